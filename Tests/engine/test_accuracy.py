"""Accuracy collection and plans on a real engine: a random model answers a 4-option task set at chance when its answer
is restricted to the options; the table loads into the profile; a killed collection resumes; hard-capped plans on the
collected table finish within their deadlines; a thinking-budget plan makes the engine close the thinking at its
budget; bad task sets and graders are named."""
import json
import math
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter


from conftest import EDGEPLAN, ENGINE_ARGS, edgeplan, kill_during, post_json, write_task_set



def table_rows(path):
    rows = []
    for line in open(path):
        if line.strip().startswith("- {"):
            fields = dict(re.findall(r"(\w+): (\"[^\"]*\"|[^,}]+)", line))
            rows.append({key: value.strip('"') for key, value in fields.items()})
    return rows


def chance_interval(questions, p=0.25, z=2.576):
    half = z * math.sqrt(p * (1 - p) / questions)
    return p - half, p + half


def test_random_model_scores_chance_with_constrained_answers_and_the_table_loads(engine, profile, tmp_path):
    tasks = tmp_path / "pick4.jsonl"
    write_task_set(tasks, 80)
    samples = tmp_path / "pick4-samples.jsonl"
    started = time.monotonic()
    result = edgeplan("accuracy", "collect", "--engine", engine.url, *ENGINE_ARGS, "--tasks", str(tasks),
                      "--budgets", "32,64", "--samples", "2", "--constrain-answer", "--precision", "1",
                      "-o", str(samples), "--profile", str(profile))
    elapsed = time.monotonic() - started
    print(result.stdout)
    assert "stopped: every question was asked" in result.stdout, result.stdout
    rows = table_rows(profile / "accuracy" / "pick4.yaml")
    measured = {(r["mode"], r.get("budget_tokens")): float(r["accuracy_pct"]) / 100 for r in rows}
    assert set(measured) == {("hard", "32"), ("hard", "64"), ("thinking-budget", "32"), ("thinking-budget", "64"),
                             ("no-reasoning", None)}, measured
    low, high = chance_interval(80)
    for cell in [("thinking-budget", "32"), ("thinking-budget", "64"), ("no-reasoning", None)]:
        assert low <= measured[cell] <= high, (cell, measured[cell], (low, high))
    # The random model never ends its reasoning by itself: cut at the cap, it never answers.
    assert measured[("hard", "32")] == 0 and measured[("hard", "64")] == 0
    hard = next(r for r in rows if r["mode"] == "hard" and r["budget_tokens"] == "64")
    assert float(hard["mean_output_tokens"]) == 64 and float(next(r for r in rows if r["mode"] == "thinking-budget" and r["budget_tokens"] == "64")["mean_output_tokens"]) == 128 and "collected by edgeplan accuracy collect, 80 questions" in hard["source"]
    # The vote model's prediction is printed beside the measured vote at each k.
    assert re.search(r"thinking-budget\s+64\s+2\s+[\d.]+ %.*%\s+[\d.]+ %\s*$", result.stdout, re.M), result.stdout
    checked = edgeplan("profile", "check", str(profile))
    assert " 0 errors" in checked.stdout, checked.stdout
    lines = [json.loads(line) for line in open(samples)]
    assert lines[0]["kind"] == "accuracy-samples" and len(lines) == 1 + 80 * 2
    print(f"accuracy collect: 80 questions x 2 samples in {elapsed:.1f} s; chance interval {low:.3f}-{high:.3f}; {measured}")


def test_hard_capped_plans_on_the_collected_table_finish_within_their_deadlines(engine, profile, tmp_path):
    tasks = tmp_path / "sorting.jsonl"
    write_task_set(tasks, 12, seed=3)
    edgeplan("accuracy", "collect", "--engine", engine.url, *ENGINE_ARGS, "--tasks", str(tasks), "--budgets", "32,64,128",
             "--samples", "1", "--modes", "hard", "--task", "sorting", "-o", str(tmp_path / "s.jsonl"), "--profile", str(profile))
    policy = tmp_path / "policy.yaml"
    # The random model is never right in hard mode, so the floor and the chance margin are lifted: the plans test
    # time, not accuracy.
    policy.write_text("kind: policy\nglobal:\n  engine: llama-server\n  parallel_factors: [1, 2, 4]\n"
                      "tasks:\n  sorting:\n    allowed_models: [TinyRandom-30M]\n    allowed_modes: [hard]\n    min_accuracy: 0\n"
                      "    chance_margin: off\n"
                      "    objective: min-energy\n")
    within_deadline, within_p95, runs = 0, 0, 0
    for deadline in ["0.4s", "0.8s", "1.5s", "3s"] * 5:
        planned = edgeplan("plan", "--profile", str(profile), "--policy", str(policy), "--task", "sorting",
                           "--deadline", deadline, "--input", "32", "--json", check=False)
        if planned.returncode != 0:
            continue
        plan = json.loads(planned.stdout)
        assert plan["mode"] == "hard" and plan["capped"] and plan["predicted"]["accuracySource"] == "measured", plan
        body = json.loads(json.dumps(plan["request"]["body"]).replace("{prompt}", "Which shelf holds part 7?"))
        body["model"] = "tiny-random"
        started = time.monotonic()
        reply = post_json(engine.url + "/v1/chat/completions", body)
        elapsed_s = time.monotonic() - started
        assert reply["timings"]["predicted_n"] <= body["max_tokens"]
        runs += 1
        within_deadline += elapsed_s <= float(deadline[:-1])
        within_p95 += elapsed_s * 1000 <= plan["predicted"]["latencyPercentileMs"]
    print(f"{within_deadline} of {runs} hard-capped plans finished within their deadline; {within_p95} within their p95")
    assert runs >= 15, runs
    assert within_deadline >= math.ceil(0.95 * runs), (within_deadline, runs)


def test_a_thinking_budget_plan_makes_the_engine_close_the_thinking_at_its_budget(engine, profile, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("kind: policy\nglobal:\n  engine: llama-server\n  parallel_factors: [1]\n"
                      "defaults:\n  chance_margin: off\n"
                      "tasks:\n  pick:\n    like: mmlu-redux\n    allowed_models: [TinyRandom-30M]\n"
                      "    allowed_modes: [thinking-budget]\n")
    plan = json.loads(edgeplan("plan", "--profile", str(profile), "--policy", str(policy), "--task", "pick",
                               "--deadline", "10s", "--input", "32", "--json").stdout)
    assert plan["mode"] == "thinking-budget" and plan["predicted"]["accuracySource"] == "modeled", plan
    budget = plan["tokenBudget"]
    body = plan["request"]["body"]
    assert body["reasoning_budget_tokens"] == budget and body["max_tokens"] <= budget + 64, body
    body = json.loads(json.dumps(body).replace("{prompt}", "Which shelf holds part 7?"))
    body.update(model="tiny-random", reasoning_format="none", temperature=0.8, seed=5, stream=True)
    # Streamed, one token a chunk: the chunks before the end tag are the thinking the engine allowed.
    request = urllib.request.Request(engine.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    pieces = []
    with urllib.request.urlopen(request, timeout=120) as response:
        for raw in response:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                content = choice.get("delta", {}).get("content")
                if content:
                    pieces.append(content)
    text = "".join(pieces)
    assert "</think>" in text, text[:300]
    end = next(index for index, piece in enumerate(pieces) if "</think>" in piece)
    # The generation prompt opened the thinking; the engine forced the end tag once the budget was spent.
    thinking = [piece for piece in pieces[:end] if piece not in ("<think>", "<think>\n")]
    assert budget - 2 <= len(thinking) <= budget + 1, (len(thinking), budget, pieces[:5])
    assert len(pieces) > end + 1, "the model answered after the forced end tag"
    print(f"thinking-budget plan: {len(thinking)} thinking tokens, end tag forced at budget {budget}, {len(pieces) - end - 1} answer tokens")


def test_sigkill_mid_accuracy_collection_resumes_without_loss_or_repeat(engine, tmp_path):
    tasks = tmp_path / "resume.jsonl"
    write_task_set(tasks, 40, seed=5)
    samples = tmp_path / "resume-samples.jsonl"
    args = [EDGEPLAN, "accuracy", "collect", "--engine", engine.url, *ENGINE_ARGS, "--tasks", str(tasks), "--budgets", "64",
            "--samples", "2", "--constrain-answer", "--precision", "0.5", "-o", str(samples)]
    kills = kill_during(args, (0.5, 1.0), grown=samples)
    assert kills >= 1, "the collection finished before it could be killed"
    partial = [json.loads(line) for line in open(samples) if line.strip()]
    assert 0 < len(partial) - 1 < 80, len(partial)
    finished = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert re.search(r"\b\d+ already in", finished.stdout), finished.stdout
    lines = [json.loads(line) for line in open(samples)]
    keys = Counter((line["question"], line["sample"]) for line in lines[1:])
    assert all(count == 1 for count in keys.values()), [k for k, c in keys.items() if c > 1]
    assert set(keys) == {(f"q{i}", s) for i in range(40) for s in range(2)}
    # A different design on the same file is refused, naming the difference.
    other = subprocess.run(args + ["--samples", "3"], capture_output=True, text=True)
    assert other.returncode != 0 and "samples per question: 2 in the file, 3 asked" in other.stderr, other.stderr


def test_external_command_grader_and_free_form_answers(engine, tmp_path):
    tasks = tmp_path / "free.jsonl"
    with open(tasks, "w") as out:
        for index in range(4):
            out.write(json.dumps({"id": f"f{index}", "prompt": f"Count to {index}.", "answer": str(index)}) + "\n")
    grader = tmp_path / "grader.py"
    grader.write_text("import json, sys\nq = json.load(sys.stdin)\nprint(q['id'] + '-seen')\n"
                      "sys.exit(0 if q['id'] == 'f0' else 1)\n")
    samples = tmp_path / "free-samples.jsonl"
    edgeplan("accuracy", "collect", "--engine", engine.url, *ENGINE_ARGS, "--tasks", str(tasks), "--budgets", "16",
             "--samples", "1", "--modes", "hard,no-reasoning", "--grader", f"command:{sys.executable} {grader}", "-o", str(samples))
    lines = [json.loads(line) for line in open(samples)][1:]
    # The command graded every output: its answer and its verdict are kept (the hard run never finished, the
    # forced answer counts).
    assert [line["answer"] for line in lines] == ["f0-seen", "f1-seen", "f2-seen", "f3-seen"], lines
    assert [line["forced"][0]["correct"] for line in lines] == [True, False, False, False]
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    failed = edgeplan("accuracy", "collect", "--engine", engine.url, *ENGINE_ARGS, "--tasks", str(tasks), "--budgets", "16",
                      "--samples", "1", "--modes", "hard", "--grader", f"command:{sys.executable} {broken}",
                      "-o", str(tmp_path / "b.jsonl"), check=False)
    assert failed.returncode != 0 and "exited 3 on question f0" in failed.stderr, failed.stderr


def test_bad_task_sets_and_flags_are_named(tmp_path):
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"id": "a", "prompt": "P", "answer": "A", "options": ["x", "y"]}\n{"id": "b", "prompt": "P"}\n')
    result = edgeplan("accuracy", "collect", "--model", "M", "--tasks", str(missing), "-o", str(tmp_path / "o.jsonl"), check=False)
    assert result.returncode != 0 and f"{missing}:2" in result.stderr and "no 'answer'" in result.stderr, result.stderr
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text('{"id": "a", "prompt": "P", "answer": "1"}\n\n{"id": "b", "prompt": \n')
    result = edgeplan("accuracy", "collect", "--model", "M", "--tasks", str(garbled), "-o", str(tmp_path / "o.jsonl"), check=False)
    assert result.returncode != 0 and f"{garbled}:3" in result.stderr, result.stderr
    free = tmp_path / "free.jsonl"
    free.write_text('{"id": "a", "prompt": "P", "answer": "1"}\n')
    result = edgeplan("accuracy", "collect", "--model", "M", "--tasks", str(free), "--constrain-answer", "-o", str(tmp_path / "o.jsonl"), check=False)
    assert result.returncode != 0 and "every question needs 'options'" in result.stderr, result.stderr
    for flags, message in [(["--grader", "fuzzy"], "unknown grader 'fuzzy'"), (["--modes", "soft"], "--modes takes"),
                           (["--engine-kind", "tgi"], "unknown engine kind 'tgi'")]:
        result = edgeplan("accuracy", "collect", "--model", "M", "--tasks", str(free), "-o", str(tmp_path / "o.jsonl"), *flags, check=False)
        assert result.returncode == 64 and message in result.stderr, (flags, result.stderr)
