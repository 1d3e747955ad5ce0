"""The H100 shared-engine collection (data/h100/shared-engine), replayed: `calibrate` on its trace, then the held-out
requests measured on the same engine after it (k = 1-32 samples through `n`, and requests beside 1-16 running
sequences) predicted by `edgeplan predict --held-out`. Prints the table; the figures are in the folder's README."""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDGEPLAN = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
DATA = os.path.join(ROOT, "data", "h100", "shared-engine")
MODEL = "Random-Qwen-1.5B-shape"


def edgeplan(*args):
    run = subprocess.run([EDGEPLAN, *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"edgeplan {' '.join(args)}: {run.stdout}\n{run.stderr}"
    return run.stdout


def mape(rows):
    return sum(abs(row["errorPct"]) for row in rows) / len(rows)


def test_the_h100_held_out_requests_against_the_profile_their_collection_gives(tmp_path):
    profile = tmp_path / "profile"
    edgeplan("profile", "new", str(profile), "--name", "h100-shared", "--memory-gib", "80", "--bandwidth-gbps", "3350",
             "--fp16-tflops", "989", "--idle-w", "75")
    print(edgeplan("calibrate", "--traces", os.path.join(DATA, "traces-random-qwen-1.5b-shape.jsonl"), "--model", MODEL,
                   "-o", str(profile), "--accuracy-like", "DSR1-Qwen-1.5B"))
    held_out = os.path.join(DATA, "held-out-random-qwen-1.5b-shape.jsonl")
    print(edgeplan("predict", "--held-out", held_out, "--profile", str(profile)))
    rows = json.loads(edgeplan("predict", "--held-out", held_out, "--profile", str(profile), "--json"))["rows"]
    assert len(rows) == 29
    alone = [row for row in rows if row["beside"] == 0]
    one = [row for row in alone if row["parallel"] == 1]
    # One sample alone: the decode fit, within a few per cent at 64-2,048 tokens.
    assert mape(one) < 5, one
    # k samples in one request step as the collection measured them through `n` (2.4 times one sample at k = 2),
    # not as k separate requests do on the curve (1.5 times): before, every k > 1 was predicted 30-66 % short.
    measured_k = [row for row in alone if row["parallel"] in (2, 4, 16, 32)]
    assert all(abs(row["errorPct"]) < 10 for row in measured_k), measured_k
    # k = 5-12 are joined through the collection's single k = 8 run (2.47 times one sample, where these requests
    # measured about 4.6): the table says so, and the whole of it stays under 20 %.
    assert mape(alone) < 20, alone
