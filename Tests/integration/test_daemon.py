"""End-to-end tests of `edgeplan serve` with the real parts: socket activation, sd_notify, a Varlink client."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import varlink

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))


class Notifications:
    """A NOTIFY_SOCKET listener like systemd's: datagrams of newline-separated assignments."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def wait_for(self, key, timeout=30, after=0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for message in self.messages[after:]:
                if key in message:
                    return message
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        raise AssertionError(f"no {key!r} notification; got {self.messages}")


@pytest.fixture
def daemon():
    directory = tempfile.mkdtemp(prefix="ep-", dir="/tmp")
    socket_path = os.path.join(directory, "planner.sock")
    policy = os.path.join(directory, "policy.yaml")
    shutil.copy(os.path.join(ROOT, "policies", "default.yaml"), policy)
    notify = Notifications(os.path.join(directory, "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="1000000")
    process = subprocess.Popen(
        ["systemd-socket-activate", "-l", socket_path, "-E", "NOTIFY_SOCKET", "-E", "WATCHDOG_USEC",
         BINARY, "serve", "--policy", policy],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(100):
        if os.path.exists(socket_path):
            break
        time.sleep(0.05)
    # systemd-socket-activate starts the service on the first connection, as systemd would.
    with varlink.Client(address="unix:" + socket_path).open("org.varlink.service") as service:
        service.GetInfo()
    yield {"socket": socket_path, "notify": notify, "process": process, "policy": policy}
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    finally:
        process.kill()
        shutil.rmtree(directory, ignore_errors=True)


def client(daemon):
    return varlink.Client(address="unix:" + daemon["socket"])


def test_socket_activation_ready_status_and_watchdog(daemon):
    with client(daemon).open("org.varlink.service") as service:
        info = service.GetInfo()
        assert "io.edgeplan.Planner" in info["interfaces"]
    ready = daemon["notify"].wait_for("READY=1")
    assert "STATUS=serving" in ready
    daemon["notify"].wait_for("WATCHDOG=1")


def test_plan_frontier_status_report(daemon):
    with client(daemon).open("io.edgeplan.Planner") as planner:
        plan = planner.Plan(task="mmlu-redux", deadlineMs=8000.0, inputTokens=256, requestId="abc")["plan"]
        assert plan["requestId"] == "abc"
        assert plan["predicted"]["latencyPercentileMs"] <= 8000
        assert plan["request"]["body"]["n"] == plan["parallel"]
        front = planner.Frontier(task="mmlu-redux", inputTokens=256)
        assert len(front["points"]) > 3
        accuracies = [p["accuracy"] for p in front["points"]]
        assert accuracies == sorted(accuracies, reverse=True)
        report = planner.Report(requestId="abc", model=plan["model"], quantization=plan["quantization"], mode=plan["mode"],
                                tokenBudget=plan["tokenBudget"], parallel=plan["parallel"], inputTokens=256,
                                outputTokens=100, latencyMs=2500.0)
        assert report["accepted"] is True
        status = planner.Status()
        assert status["plans"] >= 1 and status["reports"] >= 1


def test_errors_are_varlink_errors_not_crashes(daemon):
    with client(daemon).open("io.edgeplan.Planner") as planner:
        with pytest.raises(varlink.VarlinkError) as infeasible:
            planner.Plan(task="mmlu-redux", deadlineMs=10.0, inputTokens=256)
        assert infeasible.value.error() == "io.edgeplan.Planner.Infeasible"
        with pytest.raises(varlink.VarlinkError) as unknown:
            planner.Plan(task="juggling", deadlineMs=1000.0, inputTokens=256)
        assert unknown.value.error() == "io.edgeplan.Planner.UnknownTask"
    # A wrong type and an unknown method, sent raw so the client library cannot catch them first.
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(daemon["socket"])
    raw.sendall(b'{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":"soon","inputTokens":256}}\0')
    raw.sendall(b'{"method":"io.edgeplan.Planner.Teleport","parameters":{}}\0')
    replies = b""
    while replies.count(b"\0") < 2:
        replies += raw.recv(65536)
    first, second = replies.split(b"\0")[:2]
    assert b"org.varlink.service.InvalidParameter" in first and b"deadlineMs" in first
    assert b"org.varlink.service.MethodNotFound" in second
    # Garbage and an oversized frame cost only that connection.
    raw.sendall(b"\xff\xfe not json\0")
    assert b"io.edgeplan.Planner.InvalidInput" in raw.recv(65536)
    hostile = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hostile.connect(daemon["socket"])
    try:
        hostile.sendall(b"x" * (2 << 20))
    except OSError:
        pass
    hostile.close()
    # Just over the 64 KiB frame limit, NUL-terminated: also closed, and counted.
    over = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    over.connect(daemon["socket"])
    try:
        over.sendall(b'{"method":"io.edgeplan.Planner.Status","parameters":{"pad":"' + b"y" * (64 << 10) + b'"}}\0')
        assert over.recv(65536) == b""
    except OSError:
        pass
    over.close()
    with client(daemon).open("io.edgeplan.Planner") as planner:
        status = planner.Status()
        assert status["errors"] >= 2
        assert status["oversizeFrames"] >= 2


def test_sighup_with_broken_policy_keeps_serving_the_last_good_one(daemon):
    notify = daemon["notify"]
    notify.wait_for("READY=1")
    seen = len(notify.messages)
    with open(daemon["policy"], "a") as policy:
        policy.write("  bogus_key: 1\n")
    daemon["process"].send_signal(signal.SIGHUP)
    notify.wait_for("RELOADING=1", after=seen)
    reloaded = notify.wait_for("last reload failed", after=seen)
    assert "READY=1" in reloaded
    with client(daemon).open("io.edgeplan.Planner") as planner:
        status = planner.Status()
        assert "bogus_key" in status["lastReloadError"]
        assert planner.Plan(task="mmlu-redux", deadlineMs=8000.0, inputTokens=256)["plan"]["model"]


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a private systemd-journald needs root")
def test_decisions_are_structured_journal_entries(tmp_path):
    result_path = tmp_path / "journal.json"
    subprocess.run(["unshare", "-m", "python3", os.path.join(os.path.dirname(__file__), "journal_scenario.py"),
                    BINARY, str(result_path)], check=True, timeout=120)
    import json
    result = json.loads(result_path.read_text())
    plan = result["plan"]
    [decided] = [e for e in result["decided"] if e.get("EDGEPLAN_REQUEST_ID") == "journal-1"]
    assert decided["MESSAGE_ID"] == "6f1c5b2a9e8d4c37a1b0f2e3d4c5b6a7"
    assert decided["PRIORITY"] == "6"
    assert decided["EDGEPLAN_TASK"] == "mmlu-redux"
    assert decided["EDGEPLAN_MODEL"] == plan["model"]
    assert decided["EDGEPLAN_QUANT"] == plan["quantization"]
    assert decided["EDGEPLAN_MODE"] == plan["mode"]
    assert decided["EDGEPLAN_PARALLEL"] == str(plan["parallel"])
    assert decided["EDGEPLAN_DEADLINE_MS"] == "8000" and decided["EDGEPLAN_ENERGY_BUDGET_J"] == "200"
    assert abs(float(decided["EDGEPLAN_PRED_LATENCY_MS"]) - plan["predicted"]["latencyMs"]) <= 0.001 * plan["predicted"]["latencyMs"]
    assert abs(float(decided["EDGEPLAN_PRED_ACCURACY"]) - plan["predicted"]["accuracy"]) < 1e-3
    for field in ["EDGEPLAN_TOKEN_BUDGET", "EDGEPLAN_PRED_ENERGY_J", "EDGEPLAN_MISS_PROB"]:
        assert field in decided
    [infeasible] = result["infeasible"]
    assert result["infeasible_error"] == "io.edgeplan.Planner.Infeasible"
    assert infeasible["MESSAGE_ID"] == "0b8e7d6c5a4f4e3d9c2b1a0f9e8d7c6b"
    assert infeasible["PRIORITY"] == "4" and infeasible["EDGEPLAN_LIMIT"] == "deadline"
    # With the journal gone the daemon still plans; the lost entry is counted, not fatal.
    assert result["after_journal_died"]
    assert result["status_after"]["journalFailed"] >= 1


def test_the_published_interface_is_the_one_served(daemon):
    """docs/io.edgeplan.Planner.varlink is what org.varlink.service.GetInterfaceDescription answers, to the byte."""
    import json
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(daemon["socket"])
        connection.sendall(json.dumps({"method": "org.varlink.service.GetInterfaceDescription",
                                       "parameters": {"interface": "io.edgeplan.Planner"}}).encode() + b"\0")
        data = b""
        while not data.endswith(b"\0"):
            data += connection.recv(65536)
    served = json.loads(data[:-1])["parameters"]["description"]
    published = open(os.path.join(ROOT, "docs", "io.edgeplan.Planner.varlink")).read()
    assert served.rstrip("\n") == published.rstrip("\n")
