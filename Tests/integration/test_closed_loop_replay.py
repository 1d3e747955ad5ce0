"""The H200 closed loop (data/h200/closed-loop), replayed through the daemon's calibration loop: every run the adaptive
daemon was told about is reported again, in order, to a daemon on the same profile and policy, and its calibration
reaches the conclusions the GPU run shows (figures in data/h200/closed-loop/README.md)."""
import contextlib
import json
import os
import subprocess
import time
import uuid

import pytest
import varlink

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDGEPLAN = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
DATA = os.path.join(ROOT, "data", "h200", "closed-loop")


@contextlib.contextmanager
def served(tmp_path, profile):
    """A daemon on the GPU run's policy and `profile` (a directory under DATA), its journal in tmp_path/daemon.log."""
    socket = str(tmp_path / "planner.sock")
    with open(tmp_path / "daemon.log", "w") as sink:
        process = subprocess.Popen([EDGEPLAN, "serve", "--socket", socket, "--profile", os.path.join(DATA, profile),
                                    "--policy", os.path.join(DATA, "policy.yaml"), "--rails", "none"], stdout=sink, stderr=sink)
    try:
        deadline = time.time() + 30
        while not os.path.exists(socket):
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.05)
        yield socket
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def daemon(tmp_path):
    with served(tmp_path, "profile") as socket:
        yield socket


def replay(socket, rows, cut_aware):
    """Reports each run as the GPU run's adaptive daemon saw it; returns (request index, recalibrations) after each."""
    client = varlink.Client(address="unix:" + socket)
    trace = []
    with client.open("io.edgeplan.Planner") as planner:
        for row in rows:
            tokens = row.get("sampleOutputTokens") or []
            if row["outcome"] not in ("answered", "cut") or not tokens or max(tokens) < 1:
                continue
            if row["outcome"] == "cut" and not cut_aware:
                continue  # as the client that ran on the GPU did: a cut run's lengths went unreported
            fields = dict(requestId=str(uuid.uuid4()), model=row["model"], quantization="fp16", mode=row["mode"],
                          parallel=row["parallel"], inputTokens=row["inputTokens"], sampleOutputTokens=tokens,
                          latencyMs=row["latencyMs"])
            if row.get("tokenBudget") is not None:
                fields["tokenBudget"] = row["tokenBudget"]
            if row["outcome"] == "cut":
                fields["cut"] = True
            assert planner.Report(**fields)["accepted"]
            for _ in range(200):
                calibration = planner.Status()["calibration"]
                if calibration["pendingReports"] == 0:
                    break
                time.sleep(0.01)
            trace.append((row["index"], calibration["recalibrations"]))
    return trace


def recalibrated_at(trace):
    return [index for (index, count), (_, before) in zip(trace[1:], trace) if count > before]


def phase_starts(rows):
    starts = {}
    for row in rows:
        starts.setdefault(row["phase"], row["index"])
    return starts


def test_replayed_as_run_recalibrates_in_the_slowdown_and_misses_the_naive_load(daemon):
    rows = [json.loads(line) for line in open(os.path.join(DATA, "run-2.jsonl")) if '"adaptive"' in line]
    starts = phase_starts(rows)
    # As the GPU run reported (cut runs without their lengths): a recalibration in the 28 % slowdown, none
    # during the naive load, whose runs were nearly all cut.
    trace = replay(daemon, rows, cut_aware=False)
    first = recalibrated_at(trace)
    print(f"as run: recalibrations at requests {first}; phases start at {starts}")
    assert any(starts["slowdown"] <= index < starts["after"] for index in first), (first, starts)
    assert not any(starts["naive"] <= index < starts["after-naive"] for index in first), (first, starts)


def test_with_measured_parallel_factors_and_cut_runs_the_loop_measures_the_slowdown_the_probe_measured(tmp_path):
    """The same runs, cut runs reported as cut (what ask and run() now send), to a daemon on the profile that
    calibrate now writes (parallel factors as measured): the 1.5B model is recalibrated in the slowdown to the decode
    time that the loader probe measured under the same load (3.48 ms a token against 2.72 unloaded), and the 8B model's
    drift under the naive load is seen."""
    log = tmp_path / "daemon.log"
    with served(tmp_path, "profile-recalibrated") as socket:
        rows = [json.loads(line) for line in open(os.path.join(DATA, "run-2.jsonl")) if '"adaptive"' in line]
        starts = phase_starts(rows)
        events = recalibrated_at(replay(socket, rows, cut_aware=True))
    print(f"cut-aware, measured parallel factors: recalibrations at requests {events}; phases start at {starts}")
    assert any(starts["slowdown"] <= index < starts["after"] for index in events), (events, starts)
    probe = dict(line.split() for line in open(os.path.join(DATA, "loader-probe.txt")).read().splitlines()[1:])
    refits = [line for line in open(log) if "profile recalibrated" in line]
    qwen = [line for line in refits if "MODEL=Random-Qwen-1.5B-shape" in line]
    # The 8B model's runs under the naive load (7.4 times slower) reach its drift monitor, which sees the jump.
    drifts = [line for line in open(log) if "drift detected" in line and "MODEL=Random-Llama-8B-shape" in line]
    assert qwen and any(float(line.split("EDGEPLAN_RATIO=")[1].split()[0]) > 1.5 for line in drifts), (refits, drifts)
    decode_ms = float(qwen[0].split("EDGEPLAN_NEW_N_S_PER_TOKEN=")[1].split()[0]) * 1000
    print(f"1.5B decode after the first recalibration: {decode_ms:.2f} ms a token; the probe under the same load: {probe['duty-0.3']} ms")
    assert abs(decode_ms / float(probe["duty-0.3"]) - 1) < 0.10, (decode_ms, probe)


def test_a_sevenfold_slowdown_reaches_the_drift_monitors(tmp_path):
    """Run 3 (the profile with measured parallel factors, a naive load twice as long): back-to-back products slowed
    decode 7.4 times (loader-probe.txt), and the daemon on the GPU counted 32 of those runs as implausible (more than
    4 times the prediction), so they reached no monitor and no fit. A slower run is physically possible; only one
    slower than 20 times its prediction is refused now. Replayed, none is. (The replay sends a 6-minute run in about
    a second, so the refit's rate limit holds back the refits that the run's own pace would allow.)"""
    with served(tmp_path, "profile-recalibrated") as socket:
        rows = [json.loads(line) for line in open(os.path.join(DATA, "run-3.jsonl")) if '"adaptive"' in line]
        replay(socket, rows, cut_aware=True)
        status = varlink.Client(address="unix:" + socket).open("io.edgeplan.Planner").Status()
    on_gpu = json.load(open(os.path.join(DATA, "run-3-status.json")))["calibration"]
    implausible = {v["variant"]: v["implausibleReports"] for v in status["calibration"]["variants"]}
    gpu = {v["variant"]: v["implausibleReports"] for v in on_gpu["variants"]}
    print(f"run 3: implausible reports on the GPU {gpu}, replayed now {implausible}")
    assert sum(gpu.values()) >= 20
    assert sum(implausible.values()) == 0
