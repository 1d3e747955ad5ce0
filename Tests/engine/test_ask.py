"""The scheduler's loop in one call, on the real daemon and the real engine: `edgeplan ask` and the Python client's
`run()` plan, run the plan, vote, report; a deadline passed mid-run closes the engine's request (llama-server stops
it) and the run is still reported; an infeasible request runs nothing; an engine failure reports nothing."""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import EDGEPLAN, ENGINE_ARGS, ROOT, edgeplan, get_json, serving, write_task_set

sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import edgeplan as client  # noqa: E402

POLICY = """kind: policy
global:
  engine: llama-server
  parallel_factors: [1, 2, 4]
# The random test model answers at chance.
defaults:
  chance_margin: off
tasks:
  shelf:
    allowed_models: [TinyRandom-30M]
    allowed_modes: [thinking-budget]
  chat:
    like: mmlu-redux
    allowed_models: [TinyRandom-30M]
    allowed_modes: [no-reasoning]
    max_parallel: 1
  vote:
    like: mmlu-redux
    allowed_models: [TinyRandom-30M]
    allowed_modes: [hard]
    min_parallel: 4
"""


@pytest.fixture(scope="module")
def daemon(engine, profile, tmp_path_factory):
    root = tmp_path_factory.mktemp("ask")
    tasks = root / "shelf.jsonl"
    write_task_set(tasks, 16, seed=9)
    edgeplan("accuracy", "collect", "--engine", engine.url, *ENGINE_ARGS, "--tasks", str(tasks), "--budgets", "32,64",
             "--samples", "2", "--constrain-answer", "-o", str(root / "shelf-samples.jsonl"), "--profile", str(profile))
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    socket = str(root / "planner.sock")
    log = open(root / "serve.log", "w")
    process = subprocess.Popen([EDGEPLAN, "serve", "--socket", socket, "--profile", str(profile), "--policy", str(policy),
                                "--rails", "none"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while not os.path.exists(socket):
        assert process.poll() is None and time.time() < deadline, open(root / "serve.log").read()
        time.sleep(0.05)
    yield socket
    process.terminate()
    process.wait(10)


def ask(daemon, engine, *args, check=True):
    return edgeplan("ask", "--socket", daemon, "--engine", engine.url, "--engine-model", "tiny-random", *args, check=check)


def status(daemon):
    return json.loads(edgeplan("status", "--socket", daemon, "--json").stdout)


def test_ask_plans_runs_votes_and_reports(daemon, engine):
    before = status(daemon)["reports"]
    result = json.loads(ask(daemon, engine, "--task", "shelf", "--prompt", "Which shelf holds part 3?",
                            "--options", "top|middle|bottom|none", "--answer", "B", "--deadline", "5s", "--json").stdout)
    assert result["outcome"] == "answered", result
    assert result["plan"]["model"] == "TinyRandom-30M" and len(result["sampleOutputTokens"]) == result["plan"]["parallel"], result
    assert result["correct"] in (True, False) and result["report"]["accepted"] and result["report"]["learning"] == "learned", result
    assert result["latencyMs"] <= result["deadlineMs"]
    timing = result["timing"]
    assert timing["totalMs"] >= timing["planMs"] + timing["engineMs"] and timing["engineOwnMs"] <= timing["engineMs"], timing
    assert status(daemon)["reports"] == before + 1


def test_many_requests_over_one_connection(daemon, engine, tmp_path):
    requests = tmp_path / "requests.jsonl"
    with open(requests, "w") as out:
        for index in range(6):
            out.write(json.dumps({"task": "shelf", "prompt": f"Which shelf holds part {index}?", "options": ["top", "middle", "bottom", "none"],
                                  "answer": "ABCD"[index % 4], "deadline": "5s"}) + "\n")
        out.write(json.dumps({"task": "shelf", "prompt": "Which?", "deadline": "1ms"}) + "\n")
    result = ask(daemon, engine, "--requests", str(requests))
    assert "7 requests: 6 answered, 1 infeasible" in result.stdout, result.stdout
    assert status(daemon)["connections"] >= 0


def test_a_deadline_passed_mid_run_stops_the_engine_and_is_still_reported(daemon, engine):
    """Three long requests load the engine's two cores, so a no-reasoning plan (whose random model never stops
    before its cap) runs past its deadline: the client closes its request, llama-server stops it, and the cut run
    is reported as cut: its latency judged, its lengths teaching nothing."""
    stop = threading.Event()

    def load(seed):
        body = json.dumps({"model": "tiny-random", "prompt": list(range(300, 332)), "max_tokens": 900, "ignore_eos": True,
                           "temperature": 0.8, "seed": seed}).encode()
        while not stop.is_set():
            try:
                urllib.request.urlopen(urllib.request.Request(engine.url + "/v1/completions", data=body,
                                                              headers={"Content-Type": "application/json"}), timeout=120).read()
            except OSError:
                return

    loaders = [threading.Thread(target=load, args=(seed,), daemon=True) for seed in range(3)]
    for thread in loaders:
        thread.start()
    try:
        time.sleep(1.0)
        before = status(daemon)["reports"]
        # The shortest deadline the plan fits (the profile's speed is this machine's, measured at the session's
        # start): the plan's cap is what it can decode by then unloaded, so loaded it runs past.
        for deadline_s in (4, 5, 6, 8):
            run = ask(daemon, engine, "--task", "chat", "--prompt", "Say something long.", "--answer", "A",
                      "--deadline", f"{deadline_s}s", "--json", check=False)
            result = json.loads(run.stdout)
            if result["outcome"] != "infeasible":
                break
        assert result["outcome"] == "cut", result
        assert deadline_s * 1000 - 100 <= result["latencyMs"] <= deadline_s * 1000 + 1500, (deadline_s, result["latencyMs"])
        # Only the three loaders are still being served: the cut request's slot stops at its next token.
        for _ in range(40):
            busy = sum(slot["is_processing"] for slot in get_json(engine.url + "/slots"))
            if busy <= 3:
                break
            time.sleep(0.05)
        assert busy <= 3, busy
        assert result["correct"] is False and result["report"]["accepted"], result
        # Its latency is judged at the lengths streamed by then (evidence of a slow engine), which teach no length.
        assert result["report"]["predictedLatencyMs"] is not None and result["report"]["latencyErrorPct"] > 0, result
        assert status(daemon)["reports"] == before + 1
    finally:
        stop.set()
        for thread in loaders:
            thread.join(120)


def test_infeasible_and_engine_errors_run_and_report_nothing(daemon, engine):
    before = status(daemon)["reports"]
    infeasible = ask(daemon, engine, "--task", "shelf", "--prompt", "Which?", "--deadline", "1ms", check=False)
    assert infeasible.returncode == 2 and "infeasible" in infeasible.stdout, infeasible.stdout
    down = edgeplan("ask", "--socket", daemon, "--engine", "http://127.0.0.1:9", "--task", "shelf", "--prompt", "Which?",
                    "--deadline", "5s", check=False)
    assert down.returncode == 74 and "engine error: http://127.0.0.1:9 does not answer" in down.stdout, down.stdout
    assert status(daemon)["reports"] == before


def test_python_run_does_the_whole_loop_and_reuses_connections(daemon, engine):
    with client.Planner(daemon) as planner:
        results = [planner.run("shelf", f"Which shelf holds part {index}?", engine=engine.url, answer="C",
                               options=["top", "middle", "bottom", "none"], deadline_ms=5000, engine_model="tiny-random")
                   for index in range(4)]
        assert all(r.outcome == "answered" and r.report.accepted and r.report.learning == "learned" for r in results), results
        assert all(len(r.sample_output_tokens) == r.decision.parallel for r in results)
        assert all(r.correct == (r.answer == "C") for r in results)
        with pytest.raises(client.Infeasible):
            planner.run("shelf", "Which?", engine=engine.url, deadline_ms=1)
        with pytest.raises(client.EngineFailure, match="127.0.0.1:9"):
            planner.run("shelf", "Which?", engine="http://127.0.0.1:9", deadline_ms=5000)


def test_the_readme_run_example_runs_on_the_engine(daemon, engine):
    """docs/examples/run_loop.py, shown in the README, runs as written against the daemon and the engine."""
    before = status(daemon)["reports"]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "clients", "python"))
    ran = subprocess.run([sys.executable, os.path.join(ROOT, "docs", "examples", "run_loop.py"), daemon, engine.url, "shelf"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    outcome, answer, correct = ran.stdout.split()[:3]
    assert outcome in ("answered", "cut") and correct in ("True", "False"), ran.stdout
    assert status(daemon)["reports"] == before + 1


def engine_prompt_tokens(engine, messages):
    """The prompt's tokens as the engine's chat endpoint counts them: its template, then its tokenizer."""
    from conftest import post_json
    templated = post_json(engine.url + "/apply-template", {"messages": messages})["prompt"]
    return len(post_json(engine.url + "/tokenize", {"content": templated, "add_special": True, "parse_special": True})["tokens"])


def test_the_prompt_is_counted_by_the_engine_after_its_template(daemon, engine):
    """Text in another script is far from 4 bytes a token: the test model's vocabulary spells each of these characters
    in 3 byte tokens, so bytes / 4 would plan for a quarter of the prompt. `ask` plans for the engine's count."""
    prompt = "どの棚に部品がありますか。" * 6 + " Which shelf?"
    result = json.loads(ask(daemon, engine, "--task", "shelf", "--prompt", prompt, "--deadline", "6s", "--json").stdout)
    assert result["outcome"] in ("answered", "cut"), result
    counted = engine_prompt_tokens(engine, [{"role": "user", "content": prompt}])
    assert result["inputTokensSource"] == "templated" and result["inputTokens"] == counted, (result["inputTokens"], counted)
    assert counted > 2 * (len(prompt.encode()) + 3) // 4, counted
    # The Python client's run() counts the same way.
    with client.Planner(daemon) as planner:
        engines = client.engine.EngineConnections(engine.url)
        assert engines.count_prompt([{"role": "user", "content": prompt}]) == (counted, "templated")
        assert engines.context_per_slot() == 1024
        engines.close()


@pytest.fixture(scope="module")
def narrow_engine(llama_server_binary, tiny_model):
    """The same model on 4 slots of 256 tokens: a prompt and its budget must fit in one."""
    from conftest import Engine
    server = Engine(llama_server_binary, tiny_model, slots=4, context=1024)
    yield server
    server.stop()


def test_plans_fit_the_engine_slot_and_a_prompt_past_it_is_infeasible(daemon, narrow_engine):
    """On slots of 256 tokens, every plan's prompt and max_tokens fit the slot (the engine answers no HTTP 400 and is
    never stopped by a full slot); a prompt longer than the slot is Infeasible, naming the context."""
    requests_seen = []
    for index in range(6):
        prompt = f"Which shelf holds part {index}? " + "Think about the shelves. " * (3 + 3 * index)
        result = json.loads(ask(daemon, narrow_engine, "--task", "shelf", "--prompt", prompt, "--deadline", "8s",
                                "--json", check=False).stdout)
        assert result["outcome"] != "engine-error", result
        if result["outcome"] == "infeasible":
            assert result["reason"]["limit"] == "context", result
            continue
        requests_seen.append(result)
        budget = result["plan"]["tokenBudget"] or 0
        assert result["inputTokens"] + budget <= 256, result
    assert requests_seen, "no prompt fitted the slot"
    long_prompt = "Think about the shelves. " * 20
    result = json.loads(ask(daemon, narrow_engine, "--task", "shelf", "--prompt", long_prompt, "--deadline", "8s",
                            "--json", check=False).stdout)
    assert result["outcome"] == "infeasible" and result["reason"]["limit"] == "context", result
    assert "256-token context per sequence" in result["reason"]["message"], result["reason"]
    assert result["inputTokens"] > 256 and result["reason"]["missByTokens"] >= 1, result
    with client.Planner(daemon) as planner:
        with pytest.raises(client.Infeasible) as refused:
            planner.run("shelf", long_prompt, engine=narrow_engine.url, deadline_ms=8000, engine_model="tiny-random")
        assert refused.value.limit == "context" and refused.value.miss_by_tokens >= 1


def test_samples_that_run_to_their_cap_are_answers_not_engine_errors(daemon, engine):
    """Four samples that all run to their cap (the random model never stops). Asked for usage, llama-server sends
    each choice's timings in a chunk without choices, and opens each choice with a role chunk: counted as tokens,
    they made samples "return 513 tokens for max_tokens 512" and the run an engine error (the Swift client), or a
    report refused as impossible (the Python client)."""
    for index in range(3):
        result = json.loads(ask(daemon, engine, "--task", "vote", "--prompt", f"Which shelf holds part {index}?",
                                "--answer", "A", "--deadline", "30s", "--json").stdout)
        assert result["outcome"] == "answered", {k: result.get(k) for k in ("plan", "latencyMs", "predictedLatencyPercentileMs", "sampleOutputTokens", "timing")}
        cap = result["plan"]["tokenBudget"] or max(result["sampleOutputTokens"])
        assert result["plan"]["parallel"] == 4 and len(result["sampleOutputTokens"]) == 4, result
        # Every sample ran to its cap: the case that was thrown away.
        assert result["sampleOutputTokens"] == [cap] * 4 and result["engineCountPastCap"] is None, result
        assert result["report"]["accepted"] and result["report"]["learning"] == "learned", result["report"]
    with client.Planner(daemon) as planner:
        for index in range(3):
            ran = planner.run("vote", f"Which shelf holds part {index}?", engine=engine.url, answer="A",
                              deadline_ms=30000, engine_model="tiny-random")
            assert ran.outcome == "answered" and len(ran.sample_output_tokens) == 4, ran
            body_cap = ran.decision.request["body"]["max_tokens"]
            assert ran.sample_output_tokens == [body_cap] * 4, (ran.sample_output_tokens, body_cap)
            assert ran.report.learning == "learned", ran.report


def test_the_policy_routes_each_plan_to_its_models_engine(daemon, engine, profile, tmp_path):
    """With `global.endpoints` in the policy, every plan names its engine (the model's own before `default`), and `ask`
    and `run()` send it there with no --engine: here `default` points at a port where nothing listens, so a plan
    that went there would end in an engine error. An endpoint for a model the profile lacks is refused by name. (The
    module's daemon has measured the policy's `shelf` class into the profile.)"""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("  parallel_factors: [1, 2, 4]\n", "  parallel_factors: [1, 2, 4]\n  endpoints:\n"
                                     f"    TinyRandom-30M: {engine.url}\n    default: http://127.0.0.1:9\n"))
    socket = str(tmp_path / "planner.sock")
    with serving(socket, profile, policy):
        result = json.loads(edgeplan("ask", "--socket", socket, "--engine-model", "tiny-random", "--task", "chat",
                                     "--prompt", "Which shelf holds part 3?", "--deadline", "30s", "--json").stdout)
        assert result["outcome"] == "answered" and result["engine"] == engine.url, result
        assert result["inputTokensSource"] != "estimated", result
        with client.Planner(socket) as planner:
            ran = planner.run("chat", "Which shelf holds part 4?", deadline_ms=30000, engine_model="tiny-random")
        assert ran.outcome == "answered" and ran.decision.request["endpoint"] == engine.url, ran
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("  parallel_factors: [1, 2, 4]\n", "  parallel_factors: [1, 2, 4]\n  endpoints:\n"
                                  "    Missing-7B/fp16: http://127.0.0.1:8081\n"))
    checked = edgeplan("policy", "check", str(bad), "--profile", str(profile), check=False)
    assert checked.returncode != 0 and "global.endpoints.Missing-7B/fp16" in checked.stderr, checked.stderr
