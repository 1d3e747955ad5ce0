"""Quantizations of one model, brought up like any variant: F16, Q8_0 and Q4_0 files of the test model (the same
weights before quantization, written with the gguf package), each served by a llama-server of its own. `profile
collect` reads each file's type from its GGUF header, `calibrate` files each under its quantization in one profile,
and a policy routes each quantization to its server: the planner chooses among them, and `ask` runs each plan on the
server of its quantization.

Prints each quantization's bits per weight, as measured from its file, and its decode time per token."""
import json
import os
import re
import subprocess

import pytest

from conftest import ROOT, edgeplan, Engine, new_cpu_profile, serving

# The file type make-test-model.py writes, the quantization EdgePlan names it by, and the format's bits per weight.
FILES = {"f16": ("fp16", 16.0), "q8_0": ("q8_0", 8.5), "q4_0": ("q4_0", 4.5)}
SWEEP = ["--model", "TinyRandom-30M", "--engine-model", "tiny-random", "--context", "2048", "--decode-tokens", "1024",
         "--decode-inputs", "64", "--parallel", "1,2", "--parallel-tokens", "64", "--repeats", "2", "--warmups", "1",
         "--max-prefill", "2047", "--rails", "none", "--concurrency", "none"]

POLICY = """kind: policy
global:
  engine: llama-server
  parallel_factors: [1, 2]
  endpoints:
{endpoints}
    default: http://127.0.0.1:9
defaults:
  allowed_models: [TinyRandom-30M]
  allowed_modes: [hard]
  chance_margin: off
tasks:
  shelf:
    like: mmlu-redux
  only-fp16:
    like: mmlu-redux
    allowed_quantizations: [fp16]
  only-q8:
    like: mmlu-redux
    allowed_quantizations: [Q8_0]
  only-q4:
    like: mmlu-redux
    allowed_quantizations: [q4_0]
"""


@pytest.fixture(scope="module")
def quantized(llama_server_binary, tmp_path_factory):
    """The three files served at once, each collected and calibrated into one profile."""
    root = tmp_path_factory.mktemp("quantized")
    profile = root / "profile"
    new_cpu_profile(profile)
    engines, collected, traces = {}, {}, {}
    try:
        for kind, (name, _) in FILES.items():
            path = root / f"tiny-{kind}.gguf"
            made = subprocess.run(["python3", os.path.join(ROOT, "scripts", "make-test-model.py"), str(path), "--shape",
                                   "tiny", "--type", kind], capture_output=True, text=True)
            assert made.returncode == 0, made.stderr
            engines[name] = Engine(llama_server_binary, str(path), slots=2, context=4096)
            traces[name] = root / f"{kind}.jsonl"
            collected[name] = edgeplan("profile", "collect", "--engine", engines[name].url, *SWEEP, "-o",
                                       str(traces[name])).stdout
            edgeplan("calibrate", "--traces", str(traces[name]), "--model", "TinyRandom-30M", "-o", str(profile),
                     "--accuracy-like", "DSR1-Qwen-1.5B")
        yield engines, profile, collected, traces
    finally:
        for server in engines.values():
            server.stop()


def figure(text, key):
    return float(re.search(rf"^{key}: ([0-9.e+-]+)$", text, re.M).group(1))


def test_each_file_is_collected_and_calibrated_under_its_own_quantization(quantized):
    engines, profile, collected, traces = quantized
    rows = []
    for kind, (name, bits) in FILES.items():
        assert f"quantization: {name} (from the GGUF file's type)" in collected[name], collected[name]
        text = (profile / "models" / f"tinyrandom-30m.{name}.yaml").read_text()
        assert re.search(rf"^quantization: {re.escape(name)}$", text, re.M), text[:400]
        measured = figure(text, "bytes_per_weight") * 8
        predicted = json.loads(edgeplan("predict", "--model", "TinyRandom-30M", "--quant", name.upper(), "--input",
                                        "64", "--output", "128", "--json", "--profile", str(profile)).stdout)
        rows.append((name, bits, measured, predicted["decodeMs"] / 128))
        # The file's bytes over its parameters: the format's blocks, plus the norms (F32) and the header.
        assert abs(measured - bits) / bits < 0.1, (name, measured, bits)
    print("quantization  format bits/weight  file bits/weight  decode ms/token (calibrated)")
    for name, bits, measured, decode in rows:
        print(f"{name:<12}  {bits:18.2f}  {measured:16.2f}  {decode:12.3f}")
    accuracy = (profile / "accuracy" / "mmlu-redux.yaml").read_text()
    for name in ("q8_0", "q4_0"):
        # No accuracy of its own: the lender's full-width rows, said so.
        assert f"borrowed from DSR1-Qwen-1.5B/fp16 as a prior until accuracy collect measures TinyRandom-30M/{name}" \
            in accuracy, accuracy[:2000]
    # A --quant the trace does not hold is named with what it does hold; one the file contradicts is refused.
    wrong = edgeplan("calibrate", "--traces", str(traces["q8_0"]), "--model", "TinyRandom-30M", "--quant", "q5_k_m",
                     check=False)
    assert wrong.returncode != 0 and "they measure TinyRandom-30M/q8_0" in wrong.stderr, wrong.stderr
    contradicted = edgeplan("profile", "collect", "--engine", engines["q8_0"].url, *SWEEP, "--quant", "q4_0",
                            "-o", str(traces["q8_0"].with_suffix(".other")), "--dry-run", check=False)
    assert contradicted.returncode != 0 and "--quant q4_0 but the model file is q8_0" in contradicted.stderr, \
        contradicted.stderr
    bad = edgeplan("predict", "--model", "TinyRandom-30M", "--quant", "q4 k m", "--input", "64", "--output", "128",
                   "--profile", str(profile), check=False)
    assert bad.returncode != 0 and "a quantization is a name of 1-32 letters" in bad.stderr, bad.stderr


def test_the_planner_chooses_among_quantizations_and_ask_runs_each_on_its_engine(quantized, tmp_path):
    engines, profile, _, _ = quantized
    endpoints = "".join(f"    TinyRandom-30M/{name}: {server.url}\n" for name, server in engines.items())
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(endpoints=endpoints.rstrip("\n")))
    edgeplan("policy", "check", str(policy), "--profile", str(profile))
    for task, name in (("only-fp16", "fp16"), ("only-q8", "q8_0"), ("only-q4", "q4_0")):
        plan = json.loads(edgeplan("plan", "--task", task, "--deadline", "30s", "--input", "40", "--json", "--profile",
                                   str(profile), "--policy", str(policy)).stdout)
        assert plan["quantization"] == name and plan["request"]["endpoint"] == engines[name].url, plan
    socket = str(tmp_path / "planner.sock")
    with serving(socket, profile, policy):
        results = []
        asks = [("shelf", 4), ("only-fp16", 3), ("only-q8", 3), ("only-q4", 3), ("shelf", 1.5), ("only-fp16", 6),
                ("only-q8", 1.5), ("only-q4", 6), ("shelf", 8), ("only-q4", 2)]
        for index, (task, seconds) in enumerate(asks):
            run = edgeplan("ask", "--socket", socket, "--engine-model", "tiny-random", "--task", task, "--prompt",
                           f"Which shelf holds part {index}?", "--answer", "A", "--deadline", f"{seconds}s", "--json",
                           check=False)
            results.append((task, seconds, json.loads(run.stdout)))
        for task, seconds, result in results:
            plan = result.get("plan", {})
            print(f"{task:<10} {seconds:4.1f} s: {result['outcome']:<10} {result.get('latencyMs', 0) / 1000:5.2f} s, "
                  f"predicted p95 {(result.get('predictedLatencyPercentileMs') or 0) / 1000:5.2f} s: "
                  f"{plan.get('quantization')} {plan.get('tokenBudget')} x{plan.get('parallel')} on {result.get('engine')}")
        # None ends in an error of EdgePlan's own making, and each ran on the engine of its plan's quantization.
        assert all(result["outcome"] in ("answered", "cut", "infeasible") for _, _, result in results), results
        ran = [result for _, _, result in results if result["outcome"] != "infeasible"]
        assert len(ran) >= 8, results
        assert all(result["engine"] == engines[result["plan"]["quantization"]].url for result in ran), ran
        assert {result["plan"]["quantization"] for result in ran} == set(engines), ran
