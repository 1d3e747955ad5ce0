"""Live operations: GetPolicy, Reload (refusing a broken policy and keeping the old one), and the CLI on top."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest
import varlink

from helpers import wait_until_answers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))


@pytest.fixture
def daemon():
    directory = tempfile.mkdtemp(prefix="ep-ops-", dir="/tmp")
    path = os.path.join(directory, "planner.sock")
    policy = os.path.join(directory, "policy.yaml")
    shutil.copy(os.path.join(ROOT, "policies", "default.yaml"), policy)
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--policy", policy, "--rails", "none"], stderr=subprocess.DEVNULL)
    wait_until_answers(path)
    yield {"socket": path, "policy": policy}
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    shutil.rmtree(directory, ignore_errors=True)


def cli(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60)


def test_reload_refuses_a_broken_policy_and_takes_a_good_one(daemon):
    with varlink.Client(address="unix:" + daemon["socket"]).open("io.edgeplan.Planner") as planner:
        before = planner.GetPolicy()["policy"]
        assert before["version"] == planner.Status()["policyVersion"]
        assert before["tasks"]["mmlu-redux"]["deadlineMs"] == 10000
        with open(daemon["policy"], "a") as handle:
            handle.write("  juggling:\n    deadline: soon\n")
        with pytest.raises(varlink.VarlinkError) as error:
            planner.Reload()
        assert error.value.error() == "io.edgeplan.Planner.ReloadFailed"
        assert planner.GetPolicy()["policy"]["version"] == before["version"]
        assert "plan" in planner.Plan(task="mmlu-redux")  # the old policy still serves
        failed = cli("reload", "--socket", daemon["socket"])
        assert failed.returncode == 65 and "ReloadFailed" in failed.stderr
        shutil.copy(os.path.join(ROOT, "policies", "default.yaml"), daemon["policy"])
        with open(daemon["policy"], "a") as handle:
            handle.write("  grasp-plan:\n    like: mmlu-redux\n    deadline: 8s\n")
        reloaded = planner.Reload()
        assert reloaded["policyVersion"] != before["version"]
        assert planner.GetPolicy()["policy"]["tasks"]["grasp-plan"]["like"] == "mmlu-redux"
        assert "plan" in planner.Plan(task="grasp-plan")
    ok = cli("reload", "--socket", daemon["socket"])
    assert ok.returncode == 0 and "reloaded" in ok.stdout
    shown = cli("status", "--socket", daemon["socket"])
    assert shown.returncode == 0 and "reloads 2" in shown.stdout
    # The errors are broken down by the error answered: the two failed reloads, nothing else.
    assert "errors 2: ReloadFailed 2" in shown.stdout, shown.stdout
    policy = cli("policy", "show", "--socket", daemon["socket"])
    assert policy.returncode == 0 and '"grasp-plan"' in policy.stdout


def test_status_says_what_its_numbers_count(daemon):
    """errors by kind (an unknown task, a bad parameter) in text and JSON; a learned accuracy labeled as one
    sample's, with its report count in words (1 report, not 1 reports); Infeasible is no error."""
    with varlink.Client(address="unix:" + daemon["socket"]).open("io.edgeplan.Planner") as planner:
        for call in [lambda: planner.Plan(task="juggling"), lambda: planner.Plan(task="mmlu-redux", deadlineMs=-1.0),
                     lambda: planner.Plan(task="mmlu-redux", deadlineMs=1.0)]:
            with pytest.raises(varlink.VarlinkError):
                call()
        plan = planner.Plan(task="mmlu-redux", deadlineMs=60000.0, requestId="one-report")["plan"]
        assert planner.Report(requestId="one-report", latencyMs=plan["predicted"]["latencyMs"], correct=True)["learning"] == "learned"
        status = planner.Status()
    assert status["errors"] == 2 and status["infeasible"] == 1
    assert status["errorsByKind"] == {"InvalidInput": 1, "UnknownTask": 1}, status["errorsByKind"]
    shown = cli("status", "--socket", daemon["socket"]).stdout
    assert "errors 2: InvalidInput 1, UnknownTask 1" in shown, shown
    assert "single-sample, from 1 own report\n" in shown and "1 own reports" not in shown, shown
    assert "one sample's accuracy" in shown
    assert "no exploration" in shown


def test_plan_over_the_socket_takes_the_same_defaults_as_locally(daemon):
    local = cli("plan", "--task", "mmlu-redux", "--policy", daemon["policy"], "--json")
    remote = cli("plan", "--task", "mmlu-redux", "--socket", daemon["socket"], "--json")
    assert local.returncode == remote.returncode == 0
    import json
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    for key in ["model", "quantization", "mode", "tokenBudget", "parallel", "inputTokens", "deadlineMs"]:
        assert a[key] == b[key], key
    objective = cli("plan", "--task", "mmlu-redux", "--socket", daemon["socket"], "--objective", "min-energy", "--json")
    assert json.loads(objective.stdout)["objective"] == "min-energy"


def test_watch_streams_decisions_reports_and_reloads(daemon):
    """`edgeplan watch` and the Varlink `Watch` call (with "more") see each event as it happens; without
    "more" the call is ExpectedMore; an unknown kind is named."""
    watcher = subprocess.Popen([BINARY, "watch", "--socket", daemon["socket"], "--json", "--count", "5"], stdout=subprocess.PIPE, text=True)
    first = json.loads(watcher.stdout.readline())
    assert first["kind"] == "watching" and first["schemaVersion"] == 1
    with varlink.Client(address="unix:" + daemon["socket"]).open("io.edgeplan.Planner") as planner:
        decision = planner.Plan(task="mmlu-redux", requestId="watched-1")["plan"]
        with pytest.raises(varlink.VarlinkError):
            planner.Plan(task="mmlu-redux", deadlineMs=1.0)
        planner.Report(requestId="watched-1", latencyMs=9000.0, outputTokens=100, correct=True)
        planner.Reload()
        with open(daemon["policy"], "a") as handle:
            handle.write("  juggling:\n    deadline: soon\n")
        with pytest.raises(varlink.VarlinkError):
            planner.Reload()
        with pytest.raises(varlink.VarlinkError) as expected_more:
            planner.Watch()
        assert expected_more.value.error() == "org.varlink.service.ExpectedMore"
        with pytest.raises(varlink.VarlinkError) as unknown:
            next(planner.Watch(kinds=["gossip"], _more=True))
        assert unknown.value.error() == "io.edgeplan.Planner.InvalidInput" and "gossip" in unknown.value.parameters()["message"]
    out, _ = watcher.communicate(timeout=30)
    events = [json.loads(line) for line in out.splitlines()]
    assert watcher.returncode == 0
    assert [event["kind"] for event in events] == ["decision", "infeasible", "report", "reload", "reload"]
    assert events[0]["event"]["requestId"] == "watched-1" and events[0]["event"]["model"] == decision["model"]
    assert events[0]["time"] % 1 != 0 or events[1]["time"] % 1 != 0  # milliseconds, not whole seconds
    assert events[1]["event"]["limit"] and events[2]["event"]["learning"] == "learned"
    assert events[3]["event"]["ok"] is True and events[4]["event"]["ok"] is False and "juggling" in events[4]["event"]["message"]
    assert all(event["dropped"] == 0 for event in events)


def test_a_watcher_that_never_reads_loses_events_not_the_daemon(daemon):
    """A watcher that stops reading: plans go on without errors, and when the watcher reads again it hears at once
    how many events it lost; every decision is either delivered or counted."""
    watcher = socket.socket(socket.AF_UNIX)
    watcher.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    watcher.connect(daemon["socket"])
    watcher.sendall(b'{"method":"io.edgeplan.Planner.Watch","parameters":{"kinds":["decision"]},"more":true}\0')
    with varlink.Client(address="unix:" + daemon["socket"]).open("io.edgeplan.Planner") as planner:
        for index in range(3000):
            planner.Plan(task="mmlu-redux", requestId=f"flood-{index}")
        status = planner.Status()
    assert status["errors"] == 0
    buffer = b""
    watcher.settimeout(5)
    dropped = 0
    received = 0
    while True:
        try:
            chunk = watcher.recv(1 << 20)
        except socket.timeout:
            break
        if not chunk:
            break
        buffer += chunk
        *frames, buffer = buffer.split(b"\0")
        for frame in frames:
            event = json.loads(frame)["parameters"]
            received += event["kind"] == "decision"
            assert event["kind"] in ("watching", "decision", "dropped")
            dropped += event["dropped"]
    watcher.close()
    print(f"a watcher that did not read: {received} decisions delivered, {dropped} dropped, of 3000")
    assert dropped > 0 and received + dropped == 3000
