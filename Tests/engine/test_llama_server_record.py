"""Every claim of llama-server's capability record (EngineCapabilities.llamaServer.verified), checked against the
real engine. A claim that stops holding in a new engine version fails here, by name."""
import json
import time
import urllib.request

from conftest import post_json

PROMPT = list(range(300, 364))  # 64 token ids, clear of control and byte tokens


def completion(engine, **fields):
    return post_json(engine.url + "/v1/completions", {"model": "tiny-random", "prompt": PROMPT, "temperature": 0, **fields})


def stream(engine, **fields):
    body = json.dumps({"model": "tiny-random", "prompt": PROMPT, "stream": True, **fields}).encode()
    request = urllib.request.Request(engine.url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    events, times = [], []
    with urllib.request.urlopen(request, timeout=120) as response:
        for line in response:
            line = line.strip()
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                events.append(json.loads(line[6:]))
                times.append(time.monotonic())
    return events, times


def test_n_returns_n_choices_and_usage_counts_one(engine):
    reply = completion(engine, max_tokens=16, n=2, ignore_eos=True, temperature=0.8)
    assert len(reply["choices"]) == 2
    # The record says usage counts one choice: a client must count tokens per choice itself.
    assert reply["usage"]["completion_tokens"] == 16, reply["usage"]


def test_ignore_eos_runs_to_max_tokens_and_token_id_prompts_are_exact(engine):
    reply = completion(engine, max_tokens=40, ignore_eos=True)
    assert reply["usage"]["completion_tokens"] == 40
    assert reply["usage"]["prompt_tokens"] in (len(PROMPT), len(PROMPT) + 1), reply["usage"]  # a BOS may be added


def test_timings_and_cache_prompt(engine):
    first = completion(engine, max_tokens=1, cache_prompt=True)
    again = completion(engine, max_tokens=1, cache_prompt=True)
    fresh = completion(engine, max_tokens=1, cache_prompt=False)
    for reply in (first, again, fresh):
        assert {"prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "cache_n"} <= set(reply["timings"]), reply.get("timings")
    assert again["timings"]["cache_n"] > 0, "prompt caching is on by default"
    assert fresh["timings"]["cache_n"] == 0, fresh["timings"]


def test_streams_tokens_as_they_are_made(engine):
    events, times = stream(engine, max_tokens=64, ignore_eos=True, cache_prompt=False)
    content = [e for e in events if e.get("choices") and e["choices"][0].get("text")]
    assert len(content) >= 60
    # A server that buffers its stream delivers nearly every chunk in one burst (llama-cpp-python's server gave all
    # 257 at once). A client on a busy machine may read a few chunks together; half is far from a buffered stream.
    gaps = [b - a for a, b in zip(times, times[1:])]
    bursts = sum(1 for gap in gaps if gap < 0.0002)
    assert bursts < 0.5 * len(gaps), f"{bursts} of {len(gaps)} chunks came in bursts"
    assert any("timings" in e for e in events), "timings come with the last chunk"


def test_reasoning_budget_forces_the_end_tag(engine):
    """The engine enforces a thinking budget: B tokens after the start tag it forces the end tag. The random model is
    steered to open its thinking (a bias on `<think>`, which it then keeps choosing), so the forced `</think>` falls
    exactly after the start tag and B more tokens."""
    for budget in (4, 8):
        reply = post_json(engine.url + "/v1/completions", {
            "model": "tiny-random", "prompt": "<|user|>hi\n<|assistant|>", "max_tokens": 24, "ignore_eos": True,
            "temperature": 0, "logit_bias": [["<think>", 30]], "reasoning_budget_tokens": budget,
            "reasoning_budget_start_tag": "<think>", "reasoning_budget_end_tags": ["</think>"], "reasoning_budget_message": ""})
        text = reply["choices"][0]["text"]
        assert text.startswith("<think>") and "</think>" in text, text[:200]
        assert text.index("</think>") == (budget + 1) * len("<think>"), text[:200]


def test_grammar_restricts_the_answer_to_the_choices(engine):
    """`grammar` (GBNF) holds the answer to the options' letters, whatever the random model would say."""
    letters = set()
    for seed in range(12):
        reply = completion(engine, max_tokens=1, temperature=1.0, seed=seed, grammar='root ::= "A" | "B" | "C" | "D"')
        letters.add(reply["choices"][0]["text"])
    assert letters <= {"A", "B", "C", "D"} and len(letters) >= 2, letters


def test_apply_template_renders_the_models_template(engine):
    """`/apply-template` renders chat messages through the model's template, opening the assistant's thinking."""
    prompt = post_json(engine.url + "/apply-template", {"messages": [{"role": "user", "content": "QUESTION"}]})["prompt"]
    assert prompt == "<|user|>QUESTION\n<|assistant|><think>\n", prompt
