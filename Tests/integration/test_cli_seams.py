"""Where the CLI's commands meet: the same question gets the same answer, and errors name the real problem."""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))


def cli(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_infeasible_figures_carry_their_units_and_the_text_names_the_closest_with_its_figures():
    for limits, limit, unit in [(["--deadline", "1s"], "deadline", "Ms"), (["--deadline", "30s", "--energy", "1J"], "energyBudget", "J"),
                                (["--deadline", "5s"], "minAccuracy", "Accuracy")]:
        answer = cli("plan", "--task", "mmlu-redux", *limits, "--json")
        assert answer.returncode == 2, answer.stderr
        reason = json.loads(answer.stdout)
        assert reason["limit"] == limit and "missBy" not in reason and "requested" not in reason
        assert reason[f"missBy{unit}"] > 0 and reason[f"requested{unit}"] > 0
        assert {key for key in reason if key.startswith(("missBy", "requested"))} == {f"missBy{unit}", f"requested{unit}"}
        text = cli("plan", "--task", "mmlu-redux", *limits).stdout.splitlines()
        closest = reason["closest"]
        assert text[1].startswith(f"closest: {closest['model']} ") and "at the percentile, accuracy" in text[1], text
        assert f"{closest['latencyPercentileMs'] / 1000:.2f} s" in text[1] and f"{closest['accuracy'] * 100:.1f} %" in text[1]
        assert text[2].startswith("misses by "), text
    assert cli("plan", "--task", "mmlu-redux", "--deadline", "1s").stdout.splitlines()[2] == \
        "misses by 2.18 s (0.95 s available after the safety margin)"


def test_argument_errors_name_the_cause(tmp_path):
    """A negative number is read as the value it is, and refused for its range, not as a missing value; a policy
    path that is a directory or missing says which; a file given as a profile says it is no directory; a flag
    error in a nested command shows that command's usage."""
    for args, message in [
        (["plan", "--task", "mmlu-redux", "--input", "-5"], "--input must be within 1...1000000, got -5"),
        (["frontier", "--task", "mmlu-redux", "--input", "-5"], "--input must be within 1...1000000, got -5"),
        (["budget", "--model", "DSR1-Qwen-1.5B", "--input", "64", "--deadline", "1s", "--parallel", "-2"],
         "--parallel must be within 1...256, got -2"),
        (["plan", "--task", "mmlu-redux", "--min-accuracy", "-0.5"], "--min-accuracy must be within 0...1, got -0.5"),
        (["workload", "generate", "--mix", "workloads/home-robot-mix.yaml", "--rate", "3/h", "--duration", "-1h"],
         "duration must be positive"),
    ]:
        result = cli(*args)
        assert result.returncode == 64 and message in result.stderr and "Missing value" not in result.stderr, (args, result.stderr)
    rate = cli("workload", "generate", "--mix", "workloads/home-robot-mix.yaml", "--rate", "x", "--duration", "1h")
    assert rate.returncode == 64 and "Usage: edgeplan workload generate --mix" in rate.stderr, rate.stderr
    for path, reason in [(str(tmp_path), "it is a directory; give a file"), (str(tmp_path / "none.yaml"), "No such file or directory")]:
        result = cli("policy", "check", path)
        assert result.returncode == 74 and f"{path}: cannot read policy file: {reason}" in result.stderr, result.stderr
    profile = cli("plan", "--task", "mmlu-redux", "--profile", "README.md")
    assert profile.returncode == 74 and "is a file, not a profile directory" in profile.stderr, profile.stderr
    mix = cli("workload", "generate", "--mix", str(tmp_path / "none.yaml"), "--rate", "3/h", "--duration", "1h")
    assert "cannot read file: No such file or directory" in mix.stderr, mix.stderr


def test_profile_show_checks_before_printing_and_keeps_its_columns_apart():
    unknown = cli("profile", "show", "--lengths", "--task", "grasp-plan")
    assert unknown.returncode == 65 and unknown.stdout == "", unknown.stdout[:200]
    assert "known: mmlu, mmlu-redux" in unknown.stderr and "--policy" in unknown.stderr
    own = cli("profile", "show", "--lengths", "--task", "obstacle-reaction", "--policy", "workloads/home-robot-policy.yaml")
    assert own.returncode == 0 and "obstacle-reaction: per configuration" in own.stdout
    both = cli("profile", "show", "--votes", "--lengths")
    assert both.returncode == 0 and "per configuration (one sample)" in both.stdout and "RMS error" in both.stdout
    lengths = cli("profile", "show", "--lengths").stdout
    rows = [line for line in lengths.splitlines() if line.rstrip().endswith(tuple("0123456789")) and "capped" in line]
    assert rows and all(" prior " in line or " fitted " in line or " measured " in line for line in rows), rows[:3]
    assert not any("capped 512prior" in line for line in lengths.splitlines())


def test_frontier_is_planned_at_the_input_given_and_agrees_with_plan():
    """frontier --input 150 was the front at 256 (the bucket's edge) while plan used 150: the same configuration
    showed different figures. Now the front is at 150 and the plan's configuration has the plan's figures."""
    front = json.loads(cli("frontier", "--task", "mmlu-redux", "--input", "150", "--format", "json").stdout)
    assert front["inputTokens"] == 150
    assert "at 150 input tokens" in cli("frontier", "--task", "mmlu-redux", "--input", "150").stdout.splitlines()[0]
    plan = json.loads(cli("plan", "--task", "mmlu-redux", "--input", "150", "--deadline", "8s", "--json").stdout)
    same = [point for point in front["points"] if (point["model"], point["mode"], point.get("tokenBudget"), point["parallel"])
            == (plan["model"], plan["mode"], plan.get("tokenBudget"), plan["parallel"])]
    assert len(same) == 1, same
    assert abs(same[0]["latencyPercentileMs"] - plan["predicted"]["latencyPercentileMs"]) < 0.01
    assert abs(same[0]["energyPercentileJ"] - plan["predicted"]["energyPercentileJ"]) < 0.01


def test_budget_keeps_plans_margin_and_says_which_bound_it_gives():
    """budget gave 39 tokens for 1 s on the mean-free full deadline while plan kept a 5 % safety margin; it now
    keeps the same margin, and says that a cap bounds every percentile."""
    answer = json.loads(cli("budget", "--model", "DSR1-Qwen-1.5B", "--input", "256", "--deadline", "1s", "--json").stdout)
    assert answer["safetyMargin"] == 0.05 and answer["latencyLimitMs"] == 950
    tokens = answer["maxOutputTokens"]
    assert answer["latencyAtCapMs"] <= 950
    def predicted(output):
        return json.loads(cli("predict", "--model", "DSR1-Qwen-1.5B", "--input", "256", "--output", str(output),
                              "--json").stdout)["latencyMs"]
    assert predicted(tokens) <= 950 < predicted(tokens + 1)
    text = cli("budget", "--model", "DSR1-Qwen-1.5B", "--input", "256", "--deadline", "1s").stdout
    assert f"at most {tokens} output tokens" in text and "safety margin" in text and "every percentile" in text


def test_a_policy_without_its_kind_is_told_the_line_to_write(tmp_path):
    snippet = tmp_path / "policy.yaml"
    snippet.write_text("tasks:\n  grasp-plan:\n    like: mmlu-redux\n")
    missing = cli("policy", "check", str(snippet))
    assert missing.returncode == 65 and "a policy file starts with the line 'kind: policy'" in missing.stderr, missing.stderr
    snippet.write_text("kind: polcy\ntasks:\n  grasp-plan:\n    like: mmlu-redux\n")
    wrong = cli("policy", "check", str(snippet))
    assert wrong.returncode == 65 and "expected 'kind: policy', found 'polcy'" in wrong.stderr, wrong.stderr


def test_a_failed_calibrate_writes_nothing_and_the_profile_still_loads(tmp_path):
    """A second model whose fit fails the profile check (its batched runs 50 times too slow: a parallel slope past the
    checker's bound) exits 65 and writes nothing: the profile with the first model still loads, without the second."""
    import json as _json
    directory = tmp_path / "h100"
    first = subprocess.run([BINARY, "calibrate", "--traces", os.path.join(ROOT, "data/h100/traces-DSR1-Qwen-1.5B.jsonl"),
                            "--model", "DSR1-Qwen-1.5B", "--device", "nvidia-h100-80gb", "-o", str(directory)],
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = sorted(os.listdir(directory / "models"))
    broken = tmp_path / "slow-batches.jsonl"
    with open(os.path.join(ROOT, "data/h100/traces-DSR1-Llama-8B.jsonl")) as source, open(broken, "w") as out:
        for line in source:
            row = _json.loads(line)
            if row.get("phase") == "decode" and row.get("batch", 1) > 1:
                row["latency_s"] *= 50
            out.write(_json.dumps(row) + "\n")
    second = subprocess.run([BINARY, "calibrate", "--traces", str(broken), "--model", "DSR1-Llama-8B", "-o", str(directory)],
                            capture_output=True, text=True)
    assert second.returncode == 65, (second.returncode, second.stdout, second.stderr)
    assert "nothing was written" in second.stderr, second.stderr
    assert sorted(os.listdir(directory / "models")) == before
    check = subprocess.run([BINARY, "profile", "check", str(directory)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_calibrate_names_what_a_model_it_does_not_know_lacks(tmp_path):
    """Traces of a model the profile lacks, without the shape record a collection writes first: calibrate says the
    shape is what is missing, and where it comes from. With too few decode records it refuses and writes nothing."""
    renamed = tmp_path / "unknown.jsonl"
    with open(os.path.join(ROOT, "data/h100/traces-DSR1-Qwen-1.5B.jsonl")) as source, open(renamed, "w") as out:
        for line in source:
            record = json.loads(line)
            record["model"] = "Mystery-7B"
            out.write(json.dumps(record) + "\n")
    result = subprocess.run([BINARY, "calibrate", "--traces", str(renamed), "--model", "Mystery-7B", "-o",
                             str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 65, result.stderr
    assert "unknown model 'Mystery-7B'" in result.stderr and "none of the 1 trace files carries its shape" in result.stderr
    assert "profile collect" in result.stderr and "DSR1-Qwen-1.5B" in result.stderr, result.stderr
    # A known model whose traces hold two decode records and no per-token traces: refused, nothing written.
    sparse = tmp_path / "sparse.jsonl"
    decode = 0
    with open(os.path.join(ROOT, "data/h100/traces-DSR1-Qwen-1.5B.jsonl")) as source, open(sparse, "w") as out:
        for line in source:
            record = json.loads(line)
            if record["phase"] == "decode" and record["batch"] == 1:
                decode += 1
                if decode > 2:
                    continue
            out.write(line)
    refused = subprocess.run([BINARY, "calibrate", "--traces", str(sparse), "--model", "DSR1-Qwen-1.5B", "--device",
                              "nvidia-h100-80gb", "-o", str(tmp_path / "sparse-out")], capture_output=True, text=True)
    assert refused.returncode == 65 and "decode cannot be measured" in refused.stderr, refused.stderr
    assert not os.path.exists(tmp_path / "sparse-out" / "models")
