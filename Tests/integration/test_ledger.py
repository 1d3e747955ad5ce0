"""One engine, many sequences, on the daemon: with the policy's ledger on, every plan it returns is admitted until its
report (or its predicted end and a margin), each request is planned against the admitted runs, a plan never pushes an
admitted run of equal or higher priority past its deadline, a higher-priority one names the lower-priority runs that
must yield (and Watch says so at once), a refused request is told after which run it would fit, and a report says
what ran beside it. With the ledger off, every request is planned as on an idle engine."""
import os
import subprocess
import tempfile
import threading
import time

import pytest
import varlink

from helpers import plan_slack, wait_until_answers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))

POLICY = """kind: policy
global:
  ledger: {ledger}
  safety_margin: {margin}
defaults:
  chance_margin: off
  min_parallel: {min_parallel}
tasks:
  plan-dinner:
    like: mmlu-redux
    allowed_models: [DSR1-Qwen-1.5B]
  chat:
    like: mmlu-redux
    allowed_models: [DSR1-Qwen-1.5B]
  avoid:
    like: mmlu-redux
    allowed_models: [DSR1-Qwen-1.5B]
    priority: 5
"""


class Daemon:
    def __init__(self, ledger, margin=0.05, min_parallel=1, log=None, metrics=None):
        """`log`: a file for the daemon's journal lines (its standard error); `metrics`: its metrics textfile."""
        self.directory = tempfile.mkdtemp(prefix="ep-ledger-", dir="/tmp")
        self.socket = os.path.join(self.directory, "planner.sock")
        self.policy = os.path.join(self.directory, "policy.yaml")
        with open(self.policy, "w") as out:
            out.write(POLICY.format(ledger=ledger, margin=margin, min_parallel=min_parallel))
        self.process = subprocess.Popen([BINARY, "serve", "--socket", self.socket, "--policy", self.policy,
                                         "--rails", "none", "--state-dir", os.path.join(self.directory, "state")]
                                        + (["--metrics-textfile", metrics, "--metrics-interval", "200ms"] if metrics else []),
                                        stderr=open(log, "a") if log else subprocess.DEVNULL)
        wait_until_answers(self.socket, self.process)

    def client(self):
        return varlink.Client(address="unix:" + self.socket).open("io.edgeplan.Planner")

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def daemon():
    instance = Daemon("on")
    yield instance
    instance.stop()


def tightest_deadline_ms(task):
    """The deadline, 4-20 s, at which the best plan of `task` (on an idle engine) keeps the least slack, and the slack
    in milliseconds."""
    found = plan_slack(BINARY, task, range(4000, 20000, 250), 256, "--policy", POLICY_FILE)
    slack, deadline_ms = min(found, key=lambda pair: pair[0] * pair[1])
    return deadline_ms, slack * deadline_ms


# Little slack: a safety margin of 1 %, and every plan votes over 4 samples, so any newcomer slows an admitted run.
TIGHT = dict(margin=0.01, min_parallel=4)
POLICY_FILE = os.path.join(tempfile.mkdtemp(prefix="ep-ledger-policy-", dir="/tmp"), "policy.yaml")
with open(POLICY_FILE, "w") as _out:
    _out.write(POLICY.format(ledger="on", **TIGHT))


def test_requests_are_planned_against_the_runs_already_admitted(daemon):
    with daemon.client() as planner:
        alone = planner.Plan(task="chat", deadlineMs=30000, inputTokens=256, requestId="chat-1")["plan"]
        assert alone.get("load") is None
        dinner = planner.Plan(task="plan-dinner", deadlineMs=300000, inputTokens=512, requestId="dinner")["plan"]
        assert dinner["load"]["runsBeside"] == 1 and dinner["load"]["sequencesBeside"] == alone["parallel"]
        status = planner.Status()
        assert [run["requestId"] for run in status["ledger"]["runs"]] == ["chat-1", "dinner"]
        assert status["ledger"]["sequences"] == alone["parallel"] + dinner["parallel"]
        text = subprocess.run([BINARY, "status", "--socket", daemon.socket], capture_output=True, text=True).stdout
        assert "ledger: 2 admitted runs" in text and "dinner plan-dinner DSR1-Qwen-1.5B" in text, text
        second = planner.Plan(task="chat", deadlineMs=30000, inputTokens=256, requestId="chat-2")["plan"]
        load = second["load"]
        assert load["sequencesBeside"] == alone["parallel"] + dinner["parallel"], load
        assert load["peakSequences"] >= second["parallel"] + dinner["parallel"], load
        # Beside the others it is predicted slower than on an idle engine, and still within its deadline.
        assert second["predicted"]["latencyPercentileMs"] > load["idleLatencyPercentileMs"], (second["predicted"], load)
        assert second["predicted"]["latencyPercentileMs"] <= 30000 * 0.95
        # A report takes the run out of the ledger and says what ran beside it.
        reply = planner.Report(requestId="chat-1", latencyMs=5000.0, sampleOutputTokens=[100] * alone["parallel"])
        assert reply["ranBeside"]["meanSequences"] >= alone["parallel"], reply
        assert reply["ranBeside"]["peakSequences"] >= alone["parallel"] + dinner["parallel"] + second["parallel"], reply
        assert [run["requestId"] for run in planner.Status()["ledger"]["runs"]] == ["dinner", "chat-2"]


@pytest.fixture
def tight_daemon():
    instance = Daemon("on", **TIGHT)
    yield instance
    instance.stop()


def test_an_admitted_deadline_is_kept_and_only_a_higher_priority_makes_a_run_yield(tight_daemon):
    daemon = tight_daemon
    deadline_ms, slack_ms = tightest_deadline_ms("chat")
    assert slack_ms < 0.05 * deadline_ms, (deadline_ms, slack_ms)
    events = []

    def watch():
        with daemon.client() as watcher:
            for reply in watcher.Watch(_more=True, kinds=["preempt"]):
                events.append(reply)
                if reply["kind"] == "preempt":
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.3)
    with daemon.client() as planner:
        tight = planner.Plan(task="chat", deadlineMs=deadline_ms, inputTokens=256, requestId="tight")["plan"]
        assert tight.get("load") is None
        # An equal-priority request would slow it past its deadline: refused, and told when it would fit.
        with pytest.raises(varlink.VarlinkError) as refused:
            planner.Plan(task="chat", deadlineMs=deadline_ms, inputTokens=256, requestId="same")
        error = refused.value.parameters()
        assert refused.value.error() == "io.edgeplan.Planner.Infeasible" and error["limit"] == "busy", error
        assert error["fitsAfterRequestId"] == "tight", error
        assert abs(error["fitsAfterMs"] - tight["predicted"]["latencyPercentileMs"]) < 0.05 * deadline_ms, error
        assert "fits after tight ends" in error["message"], error["message"]
        # A higher-priority request makes it yield: the plan names it, it leaves the ledger, Watch says so.
        urgent = planner.Plan(task="avoid", deadlineMs=deadline_ms, inputTokens=256, requestId="urgent")["plan"]
        assert urgent["load"]["preempts"] == ["tight"], urgent["load"]
        assert [run["requestId"] for run in planner.Status()["ledger"]["runs"]] == ["urgent"]
        assert planner.Status()["ledger"]["preempted"] == 1
        # And an equal priority is never preempted: a second urgent request beside the first is refused.
        with pytest.raises(varlink.VarlinkError) as again:
            planner.Plan(task="avoid", deadlineMs=deadline_ms, inputTokens=256, requestId="urgent-2")
        assert again.value.parameters()["limit"] == "busy"
    watcher.join(5)
    preempt = [event for event in events if event["kind"] == "preempt"]
    assert preempt and preempt[0]["event"]["requestIds"] == ["tight"] and preempt[0]["event"]["by"] == "urgent", events


def test_with_the_ledger_off_every_request_is_planned_for_an_idle_engine():
    off = Daemon("off")
    try:
        with off.client() as planner:
            plans = [planner.Plan(task="chat", deadlineMs=30000, inputTokens=256)["plan"] for _ in range(3)]
            assert all(plan.get("load") is None for plan in plans)
            assert len({plan["predicted"]["latencyPercentileMs"] for plan in plans}) == 1
            assert planner.Status().get("ledger") is None
    finally:
        off.stop()


def test_runs_are_forgotten_after_their_predicted_end_and_margin(daemon):
    with daemon.client() as planner:
        short = planner.Plan(task="chat", deadlineMs=4000, inputTokens=256, requestId="short")["plan"]
        assert len(planner.Status()["ledger"]["runs"]) == 1
        # Its predicted end plus the margin (at least 2 s): then it no longer weighs on plans.
        time.sleep(short["predicted"]["latencyPercentileMs"] / 1000 + 2.2)
        status = planner.Status()["ledger"]
        assert status["runs"] == [] and status["expired"] == 1, status
        assert planner.Plan(task="chat", deadlineMs=30000, inputTokens=256)["plan"].get("load") is None


def test_the_journal_and_the_metrics_show_the_load_each_decision_assumed(tmp_path):
    """Each decision's journal entry carries the load it was planned against (none on an idle engine), and the
    metrics file the ledger's runs and sequences."""
    log, metrics = str(tmp_path / "daemon.log"), str(tmp_path / "metrics.prom")
    daemon = Daemon("on", log=log, metrics=metrics)
    try:
        with daemon.client() as planner:
            alone = planner.Plan(task="chat", deadlineMs=30000, inputTokens=256, requestId="journal-chat")["plan"]
            beside = planner.Plan(task="plan-dinner", deadlineMs=300000, inputTokens=512, requestId="journal-dinner")["plan"]
        text = ""
        for _ in range(100):
            text = open(metrics).read() if os.path.exists(metrics) else ""
            if "edgeplan_ledger_runs 2" in text:
                break
            time.sleep(0.1)
        assert "edgeplan_ledger_runs 2" in text, text
        assert f"edgeplan_ledger_sequences {alone['parallel'] + beside['parallel']}" in text, text
        assert "edgeplan_ledger_preempted_runs 0" in text and "edgeplan_ledger_expired_runs 0" in text, text
        lines = {}
        for _ in range(100):
            lines = {request: line for line in open(log).read().splitlines() for request in ["journal-chat", "journal-dinner"]
                     if f"EDGEPLAN_REQUEST_ID={request} " in line}
            if len(lines) == 2:
                break
            time.sleep(0.1)
        print(lines["journal-dinner"])
        assert "EDGEPLAN_LOAD_" not in lines["journal-chat"], lines["journal-chat"]
        dinner = lines["journal-dinner"]
        assert "EDGEPLAN_LOAD_RUNS_BESIDE=1 " in dinner and f"EDGEPLAN_LOAD_SEQUENCES_BESIDE={alone['parallel']} " in dinner
        assert "EDGEPLAN_LOAD_PREEMPTS=none " in dinner and "EDGEPLAN_LOAD_WAIT_MS=" in dinner, dinner
    finally:
        daemon.stop()
