"""End to end: who may teach the daemon (peer credentials), the socket's mode, and no socket takeover."""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import traceback

import pytest
import varlink

from helpers import wait_until_answers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
NOBODY = 65534


def start(path, state=None):
    args = [BINARY, "serve", "--socket", path, "--rails", "none"]
    if state:
        args += ["--state-dir", state]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    wait_until_answers(path, process)
    return process


def call(path, method, parameters):
    """One raw Varlink call (NUL-framed JSON), usable after dropping privileges."""
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        client.sendall(json.dumps({"method": method, "parameters": parameters}).encode() + b"\0")
        data = b""
        while not data.endswith(b"\0"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
        return json.loads(data.rstrip(b"\0"))


def as_nobody_child(work):
    """Runs `work()` in a child process that has become nobody and returns its JSON-able result; an exception
    in the child fails the test with the child's traceback."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        outcome = {"error": "the child ended before it finished"}
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            outcome = {"result": work()}
        except BaseException:
            outcome = {"error": traceback.format_exc()}
        finally:
            os.write(write, json.dumps(outcome).encode())
            os._exit(0)
    os.close(write)
    data = b""
    while True:
        chunk = os.read(read, 1 << 20)
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    outcome = json.loads(data)
    assert "error" not in outcome, "the client acting as nobody failed:\n" + outcome["error"]
    return outcome["result"]


def as_nobody(path, method, parameters):
    """One call from a child process that has become nobody; returns its reply."""
    return as_nobody_child(lambda: call(path, method, parameters))


@pytest.fixture
def directory():
    path = tempfile.mkdtemp(prefix="ep-peer-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_only_authorized_peers_may_report(directory):
    path = os.path.join(directory, "planner.sock")
    daemon = start(path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        # Let nobody reach the socket for this test, as a member of the socket's group would.
        os.chmod(directory, 0o755)
        os.chmod(path, 0o666)
        plan = as_nobody(path, "io.edgeplan.Planner.Plan", {"task": "mmlu-redux", "deadlineMs": 10000})
        assert "plan" in plan["parameters"], plan
        report = {"requestId": plan["parameters"]["plan"]["requestId"], "latencyMs": 1000.0, "correct": False}
        refused = as_nobody(path, "io.edgeplan.Planner.Report", report)
        assert refused["error"] == "org.varlink.service.PermissionDenied"
        with varlink.Client(address="unix:" + path).open("io.edgeplan.Planner") as planner:
            status = planner.Status()
            assert status["refusedReports"] == 1 and status["reports"] == 0
            assert planner.Report(**report)["learning"] == "learned"  # root may
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)


def test_a_second_daemon_does_not_steal_the_socket_but_a_stale_one_is_replaced(directory):
    path = os.path.join(directory, "planner.sock")
    first = start(path)
    try:
        second = subprocess.run([BINARY, "serve", "--socket", path, "--rails", "none"], capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "another daemon answers" in second.stderr
        with varlink.Client(address="unix:" + path).open("io.edgeplan.Planner") as planner:
            assert planner.Status()["plans"] == 0  # the first still answers on its socket
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=20)
    assert os.path.exists(path)  # a killed daemon leaves its socket file behind
    third = start(path)
    try:
        with varlink.Client(address="unix:" + path).open("io.edgeplan.Planner") as planner:
            assert planner.Status()["plans"] == 0
    finally:
        third.send_signal(signal.SIGTERM)
        third.wait(timeout=20)


def test_a_socket_path_the_kernel_cannot_bind_is_refused_by_name(directory):
    deep = os.path.join(directory, "d" * 90)
    os.mkdir(deep)
    path = os.path.join(deep, "planner.sock")
    result = subprocess.run([BINARY, "serve", "--socket", path, "--rails", "none"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "socket path too long (at most" in result.stderr and path in result.stderr, result.stderr
    assert os.listdir(deep) == []  # nothing half-made is left behind


def test_a_corrupt_store_is_moved_aside_and_the_daemon_serves(directory):
    state = os.path.join(directory, "state")
    os.makedirs(state)
    with open(os.path.join(state, "observations.sqlite"), "wb") as handle:
        handle.write(b"this is not a database" * 1000)
    path = os.path.join(directory, "planner.sock")
    daemon = start(path, state=state)
    try:
        with varlink.Client(address="unix:" + path).open("io.edgeplan.Planner") as planner:
            assert "plan" in planner.Plan(task="mmlu-redux", deadlineMs=10000.0)
            moved = planner.Status()["calibration"]["storeMovedAside"]
        assert moved.startswith(os.path.join(state, "observations.sqlite.corrupt-"))
        assert open(moved, "rb").read().startswith(b"this is not a database")
        check = subprocess.run(["python3", "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
                                os.path.join(state, "observations.sqlite")], capture_output=True, text=True)
        assert check.stdout.strip() == "ok"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs in its own namespace")
def test_a_full_disk_shows_in_status_and_the_daemon_keeps_planning(directory):
    result_path = os.path.join(directory, "result.json")
    subprocess.run(["unshare", "-m", "python3", os.path.join(os.path.dirname(__file__), "disk_full_scenario.py"), BINARY, directory, result_path],
                   check=True, timeout=300)
    result = json.load(open(result_path))
    assert result["plan"] is True
    assert result["status"]["storageFailures"] > 0
    assert "full" in (result["status"]["lastStorageError"] or "").lower() or "disk" in (result["status"]["lastStorageError"] or "").lower()
    assert result["exit"] == 0


def calls_as_nobody(path, method, parameter_list):
    """Many calls on one connection from a child that has become nobody; returns the replies."""
    def calls():
        replies = []
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            buffer = b""
            for parameters in parameter_list:
                client.sendall(json.dumps({"method": method, "parameters": parameters}).encode() + b"\0")
                while b"\0" not in buffer:
                    chunk = client.recv(65536)
                    if not chunk:
                        raise ConnectionError(f"the daemon closed the connection after {len(replies)} replies")
                    buffer += chunk
                frame, buffer = buffer.split(b"\0", 1)
                replies.append(json.loads(frame))
        return replies
    return as_nobody_child(calls)


def wait_for_queue(planner):
    for _ in range(400):
        if planner.Status()["calibration"]["pendingReports"] == 0:
            return
        time.sleep(0.05)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_lying_peer_is_refused_outvoted_and_rolled_back(directory):
    """1,000 hostile reports: refused from an unauthorized peer; from an authorized one that reports 60 % of the
    true latency they move no prediction by more than 10 %, genuine reports are still accepted; alone, its faster
    runs move nothing (faster than measured needs a second peer), and a slower recalibration its runs carried alone
    is rolled back once genuine runs disagree."""
    path = os.path.join(directory, "planner.sock")
    state = os.path.join(directory, "state")
    policy = os.path.join(directory, "policy.yaml")
    default = open(os.path.join(ROOT, "policies", "default.yaml")).read()
    with open(policy, "w") as handle:
        handle.write(default)
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--rails", "none", "--state-dir", state, "--policy", policy],
                               stderr=subprocess.DEVNULL)
    wait_until_answers(path, process)
    os.chmod(directory, 0o755)
    os.chmod(path, 0o666)
    try:
        with varlink.Client(address="unix:" + path).open("io.edgeplan.Planner") as planner:
            plan = planner.Plan(task="mmlu-redux", deadlineMs=10000.0)["plan"]
            shape = {key: plan[key] for key in ("model", "quantization", "mode", "tokenBudget", "parallel", "inputTokens") if plan.get(key) is not None}
            outputs = [150, 300, 600, 1200]
            # The profile's prediction for each output length: a probe report near it, whose reply says it exactly.
            truth = {}
            for output in outputs:
                reply = planner.Report(requestId=f"probe-{output}", outputTokens=output, latencyMs=plan["predicted"]["latencyMs"] * output / plan["predicted"]["meanOutputTokens"], **shape)
                truth[output] = reply["predictedLatencyMs"]

            def genuine(tag, count):
                for index in range(count):
                    output = outputs[index % len(outputs)]
                    reply = planner.Report(requestId=f"{tag}-{index}", outputTokens=output, latencyMs=truth[output] * (1 + 0.01 * ((index % 5) - 2)), **shape)
                    assert reply["accepted"], reply

            def lies(tag, count, factor=0.6):
                return [dict(requestId=f"{tag}-{index}", outputTokens=outputs[index % len(outputs)],
                             latencyMs=factor * truth[outputs[index % len(outputs)]], **shape) for index in range(count)]

            def predictions(tag):
                return {output: planner.Report(requestId=f"{tag}-{output}", outputTokens=output, latencyMs=truth[output], **shape)["predictedLatencyMs"]
                        for output in outputs}

            # 1. Not among the reporters: every one of 1,000 reports is refused.
            refused = calls_as_nobody(path, "io.edgeplan.Planner.Report", lies("unauthorized", 1000))
            assert all(reply.get("error") == "org.varlink.service.PermissionDenied" for reply in refused)
            assert planner.Status()["refusedReports"] == 1000

            # 2. Authorized (nobody added to the reporters), lying, alongside a genuine reporter.
            with open(policy, "w") as handle:
                handle.write(default + "reporting:\n  users: [nobody]\n")
            planner.Reload()
            genuine("before", 40)
            for round in range(10):
                replies = calls_as_nobody(path, "io.edgeplan.Planner.Report", lies(f"lie-{round}", 100))
                assert all(reply["parameters"]["accepted"] for reply in replies)
                genuine(f"genuine-{round}", 10)
            wait_for_queue(planner)
            after = predictions("check")
            moved = {output: after[output] / truth[output] - 1 for output in outputs}
            print("authorized liar, 1,000 reports at 60 %: predictions moved by " + ", ".join(f"{100 * value:+.1f} %" for value in moved.values()))
            assert all(abs(value) <= 0.10 for value in moved.values()), moved

            # 3. Alone, the liar's faster runs move nothing: a device faster than measured needs a second peer.
            planner.Reload()  # a fresh calibration baseline
            recalibrations = planner.Status()["calibration"]["recalibrations"]
            calls_as_nobody(path, "io.edgeplan.Planner.Report", lies("alone", 60))
            wait_for_queue(planner)
            held = predictions("held")
            print(f"liar alone, 60 runs at 60 %: {held[600]:.0f} ms predicted for {truth[600]:.0f} ms")
            assert planner.Status()["calibration"]["recalibrations"] == recalibrations
            assert all(abs(held[output] / truth[output] - 1) <= 0.02 for output in outputs), held

            # 4. A slower recalibration the liar's runs carried alone (caution is believed at once) is rolled back once
            # genuine runs disagree.
            rolled_back_before = planner.Status()["calibration"]["rolledBack"]
            planner.Reload()
            calls_as_nobody(path, "io.edgeplan.Planner.Report", lies("slower", 60, factor=1.6))
            wait_for_queue(planner)
            fooled = predictions("fooled")
            assert planner.Status()["calibration"]["recalibrations"] >= 1
            assert fooled[600] > 1.3 * truth[600], fooled
            genuine("after", 12)
            wait_for_queue(planner)
            calibration = planner.Status()["calibration"]
            restored = predictions("restored")
            print(f"liar alone: {fooled[600]:.0f} ms predicted for {truth[600]:.0f} ms; after genuine runs: {restored[600]:.0f} ms; "
                  f"rolled back {calibration['rolledBack'] - rolled_back_before} (before: {rolled_back_before}), last event: {calibration['lastEvent']}")
            assert calibration["rolledBack"] > rolled_back_before
            assert all(abs(restored[output] / truth[output] - 1) <= 0.10 for output in outputs)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_one_peer_flooding_reports_is_rate_limited_and_others_are_not(directory):
    path = os.path.join(directory, "planner.sock")
    policy = os.path.join(directory, "policy.yaml")
    with open(policy, "w") as handle:
        handle.write(open(os.path.join(ROOT, "policies", "default.yaml")).read() + "reporting:\n  users: [nobody]\n  max_reports_per_second: 20\n")
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--rails", "none", "--policy", policy], stderr=subprocess.DEVNULL)
    wait_until_answers(path, process)
    os.chmod(directory, 0o755)
    os.chmod(path, 0o666)
    try:
        report = {"requestId": "flood", "model": "DSR1-Qwen-1.5B", "quantization": "fp16", "mode": "base", "parallel": 1,
                  "inputTokens": 256, "outputTokens": 200, "latencyMs": 5000.0}
        with varlink.Client(address="unix:" + path).open("io.edgeplan.Planner") as planner:
            started = time.time()
            replies = [planner.Report(**report) for _ in range(300)]
            elapsed = time.time() - started
            accepted = sum(reply["accepted"] for reply in replies)
            dropped = [reply for reply in replies if not reply["accepted"]]
            # A burst of 40, then 20 a second.
            assert 40 <= accepted <= 40 + 20 * elapsed + 1, (accepted, elapsed)
            assert "max_reports_per_second" in dropped[0]["learning"]
            others = calls_as_nobody(path, "io.edgeplan.Planner.Report", [report] * 10)
            assert all(reply["parameters"]["accepted"] for reply in others)
            status = planner.Status()
            assert status["rateLimitedReports"] == 300 - accepted
            assert planner.GetPolicy()["policy"]["reporting"]["maxReportsPerSecond"] == 20
        print(f"one peer sending 300 reports in {elapsed:.2f} s at a limit of 20 a second: {accepted} accepted; another peer's 10 all accepted")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
