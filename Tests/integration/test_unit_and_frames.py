"""The shipped unit's reload refuses a broken policy; the daemon survives a stream of malformed frames."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import varlink

from helpers import wait_until_answers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
# CI runs 100,000 frames; EDGEPLAN_FUZZ_FRAMES sets more for a long run.
FRAMES = int(os.environ.get("EDGEPLAN_FUZZ_FRAMES", "100000"))


def reload_commands():
    for line in open(os.path.join(ROOT, "systemd", "edgeplan.service")):
        if line.startswith("ExecReload="):
            yield line.split("=", 1)[1].split()


def test_the_units_reload_fails_on_a_broken_policy(tmp_path):
    commands = list(reload_commands())
    assert commands[0][1:3] == ["policy", "check"] and commands[-1][0] == "/bin/kill", "check first, then signal"
    check = commands[0]
    broken = tmp_path / "policy.yaml"
    broken.write_text("kind: policy\ndefaults:\n  deadline: soon\n")
    result = subprocess.run([BINARY] + check[1:-1] + [str(broken)], capture_output=True, text=True)
    assert result.returncode != 0 and "deadline" in result.stderr
    good = tmp_path / "good.yaml"
    shutil.copy(os.path.join(ROOT, "policies", "default.yaml"), good)
    assert subprocess.run([BINARY] + check[1:-1] + [str(good)], capture_output=True).returncode == 0


def malformed(rng):
    valid = {"method": "io.edgeplan.Planner.Plan", "parameters": {"task": "mmlu-redux", "deadlineMs": 8000}}
    kind = rng.randrange(8)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\0", b"") + b"\0"
    if kind == 1:
        text = json.dumps(valid).encode()
        return text[: rng.randrange(1, len(text))] + b"\0"  # truncated
    if kind == 2:
        value = rng.choice([None, True, "x", [], {}, -1, 1e308, "5000", [1, 2]])
        parameters = dict(valid["parameters"], **{rng.choice(["task", "deadlineMs", "inputTokens", "energyBudgetJ", "objective"]): value})
        return json.dumps({"method": valid["method"], "parameters": parameters}).encode() + b"\0"  # type-confused
    if kind == 3:
        return json.dumps({"method": rng.choice(["", ".", "io.edgeplan.Planner.", "x" * 300, 5]), "parameters": {}}).encode() + b"\0"
    if kind == 4:
        return b"[" * rng.randrange(50, 5000) + b"\0"  # deep nesting
    if kind == 5:
        return b'{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":+8000}}\0'
    if kind == 6:
        return json.dumps({"method": "io.edgeplan.Planner.Report", "parameters": {"requestId": "x" * rng.randrange(1, 500), "latencyMs": rng.choice([-1, 0, 1e12, "fast"])}}).encode() + b"\0"
    return b"\xff\xfe\xfd" * rng.randrange(1, 100) + b"\0"


def test_malformed_frames_never_crash_or_hang_the_daemon():
    directory = tempfile.mkdtemp(prefix="ep-fuzz-", dir="/tmp")
    path = os.path.join(directory, "planner.sock")
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--rails", "none"], stderr=subprocess.DEVNULL)
    try:
        wait_until_answers(path)
        rng = random.Random(1)
        sent, batches = 0, 0
        started = time.time()
        while sent < FRAMES:
            batch = b"".join(malformed(rng) for _ in range(500))
            with socket.socket(socket.AF_UNIX) as hostile:
                hostile.connect(path)
                hostile.settimeout(10)
                try:
                    hostile.sendall(batch)
                    hostile.shutdown(socket.SHUT_WR)
                    while hostile.recv(1 << 16):
                        pass
                except OSError:
                    pass  # the daemon may close a connection that misbehaves; that is its right
            sent += 500
            batches += 1
            # After every batch a well-formed Plan is answered.
            with varlink.Client(address="unix:" + path).open("io.edgeplan.Planner") as planner:
                assert "plan" in planner.Plan(task="mmlu-redux", deadlineMs=10000.0)
            assert process.poll() is None, "the daemon died"
        print(f"{sent} malformed frames in {batches} batches, {time.time() - started:.1f} s: 0 crashes, 0 hangs")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        shutil.rmtree(directory, ignore_errors=True)
