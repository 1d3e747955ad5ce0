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
