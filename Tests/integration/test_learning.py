"""End to end: the daemon learns accuracy from reports. A scripted ground truth differs from the tables for
one task class (the configuration the planner prefers is truly 30 points worse); after a few hundred
Plan → run → Report rounds the planner moves to a truly better configuration, its posterior for the first
is within 10 points of the truth, and both survive a restart. Also: reports cannot teach through unknown
request ids, a plan teaches once, and a peer that reports only failures is ignored."""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import varlink

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
ROUNDS = int(os.environ.get("EDGEPLAN_LEARNING_ROUNDS", "300"))

POLICY = """kind: policy
global:
  explore: {explore}
  explore_max_loss: 0.1
tasks:
  grasp-plan:
    like: mmlu-redux
    prior_weight: 20
    deadline: 30m
    input_tokens: 256
    max_parallel: 1
    allowed_models: [DSR1-Qwen-14B, Llama3.1-8B-it]
    allowed_quantizations: [fp16]
    allowed_modes: [base, direct]
"""


class Daemon:
    def __init__(self, directory):
        self.directory = directory
        self.socket = os.path.join(directory, "planner.sock")
        self.policy = os.path.join(directory, "policy.yaml")
        self.state = os.path.join(directory, "state")
        self.process = None

    def start(self, explore):
        with open(self.policy, "w") as handle:
            handle.write(POLICY.format(explore=explore))
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.process = subprocess.Popen(
            [BINARY, "serve", "--socket", self.socket, "--state-dir", self.state, "--policy", self.policy, "--rails", "none"],
            stderr=subprocess.DEVNULL)
        for _ in range(400):
            if os.path.exists(self.socket):
                break
            time.sleep(0.05)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)

    def planner(self):
        return varlink.Client(address="unix:" + self.socket).open("io.edgeplan.Planner")

    def settle(self, planner):
        for _ in range(400):
            if planner.Status()["calibration"]["pendingReports"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("reports still pending")


@pytest.fixture
def daemon():
    directory = tempfile.mkdtemp(prefix="ep-learn-", dir="/tmp")
    instance = Daemon(directory)
    yield instance
    if instance.process and instance.process.poll() is None:
        instance.stop()
    shutil.rmtree(directory, ignore_errors=True)


def key(plan):
    return (plan["model"], plan["quantization"], plan["mode"])


def group_status(planner, model, mode):
    for group in planner.Status()["learning"]["groups"]:
        if group["task"] == "grasp-plan" and group["model"] == model and group["mode"] == mode:
            return group
    return None


def test_learning_moves_the_planner_to_a_truly_better_configuration_and_survives_restart(daemon):
    # Greedy and settled after every report, so the run is the same every time: the posterior for the first
    # configuration falls until the planner prefers the alternative (58.3 %), 7.7 points from its truth.
    daemon.start(explore="off")
    rng = random.Random(7)
    truth = {}
    with daemon.planner() as planner:
        first = planner.Plan(task="grasp-plan")["plan"]
        preferred = key(first)
        assert first["predicted"]["accuracySource"] == "measured"
        # The scripted truth: the configuration the planner prefers is 30 points worse than its table says.
        truth[preferred] = first["predicted"]["accuracy"] - 0.30
        for round_ in range(ROUNDS):
            plan = planner.Plan(task="grasp-plan")["plan"]
            config = key(plan)
            if config not in truth:
                assert plan["predicted"]["accuracySource"] == "measured", plan
                truth[config] = plan["predicted"]["accuracy"]
            correct = rng.random() < truth[config]
            # Accuracy alone: lengths are left out so that only what is learned about accuracy moves the planner.
            reply = planner.Report(requestId=plan["requestId"], latencyMs=plan["predicted"]["latencyMs"], correct=correct)
            assert reply["learning"] == "learned"
            daemon.settle(planner)
        daemon.settle(planner)
        learned = group_status(planner, preferred[0], preferred[2])
        assert learned is not None and learned["observations"] >= 5, learned
        assert abs(learned["singleSampleAccuracy"] - truth[preferred]) <= 0.10, (learned, truth[preferred])
        print(f"first configuration {preferred}: truth {truth[preferred]:.3f}, learned {learned['singleSampleAccuracy']:.3f} "
              f"[{learned['singleSampleLow']:.3f}, {learned['singleSampleHigh']:.3f}] from {learned['observations']} reports")
        assert learned["singleSampleLow"] <= learned["singleSampleAccuracy"] <= learned["singleSampleHigh"]
    daemon.stop()

    # After a restart the posteriors are back and the choice holds; exploration may be on without changing it.
    daemon.start(explore="thompson")
    with daemon.planner() as planner:
        choices = [planner.Plan(task="grasp-plan")["plan"] for _ in range(20)]
        after = choices[0]
        assert all(key(choice) != preferred for choice in choices)
        assert truth[key(after)] > truth[preferred]
        restored = group_status(planner, preferred[0], preferred[2])
        assert restored is not None and abs(restored["singleSampleAccuracy"] - learned["singleSampleAccuracy"]) < 1e-6
        assert restored["observations"] == learned["observations"]


def test_reports_teach_only_remembered_plans_once(daemon):
    daemon.start(explore="off")
    with daemon.planner() as planner:
        plan = planner.Plan(task="grasp-plan")["plan"]
        ok = planner.Report(requestId=plan["requestId"], latencyMs=plan["predicted"]["latencyMs"], correct=True)
        assert ok["learning"] == "learned"
        again = planner.Report(requestId=plan["requestId"], latencyMs=plan["predicted"]["latencyMs"], correct=False)
        assert again["learning"] == "already reported"
        stranger = planner.Report(requestId="never-planned", model=plan["model"], quantization=plan["quantization"], mode=plan["mode"],
                                  parallel=1, inputTokens=256, outputTokens=100, latencyMs=20000.0, correct=False)
        assert stranger["learning"].startswith("unknown request id")
        with pytest.raises(varlink.VarlinkError) as error:
            planner.Report(requestId="never-planned-either", latencyMs=1000.0, correct=False)
        # The cause is named: an unknown request id, not a missing model.
        assert error.value.error() == "io.edgeplan.Planner.InvalidInput"
        assert error.value.parameters()["parameter"] == "requestId" and "unknown request id 'never-planned-either'" in error.value.parameters()["message"]
        # Fields that contradict the remembered plan are refused.
        other = planner.Plan(task="grasp-plan")["plan"]
        with pytest.raises(varlink.VarlinkError):
            planner.Report(requestId=other["requestId"], model="DSR1-Qwen-1.5B", latencyMs=1000.0, correct=True)
        daemon.settle(planner)
        assert planner.Status()["learning"]["rememberedPlans"] >= 2


def test_a_peer_reporting_only_failures_is_ignored(daemon):
    daemon.start(explore="off")
    with daemon.planner() as planner:
        before = planner.Plan(task="grasp-plan")["plan"]
        for _ in range(60):
            plan = planner.Plan(task="grasp-plan")["plan"]
            planner.Report(requestId=plan["requestId"], latencyMs=plan["predicted"]["latencyMs"], correct=False)
        daemon.settle(planner)
        status = planner.Status()["learning"]
        assert status["ignoredPeers"] == [os.getuid()]
        assert status["refused"]["implausible-peer"] >= 1
        after = planner.Plan(task="grasp-plan")["plan"]
        assert key(after) == key(before)
        assert after["predicted"]["accuracy"] == pytest.approx(before["predicted"]["accuracy"])


def frontier_learned(planner):
    """The front's accuracy per configuration, as the planner believes it now."""
    points = planner.Frontier(task="grasp-plan", inputTokens=256)["points"]
    return {(p["model"], p["mode"], p.get("tokenBudget"), p["parallel"]): p["accuracy"] for p in points}


def run_reports(daemon, count, seed):
    """count Plan and Report pairs as fast as one client goes; returns the last reply."""
    rng = random.Random(seed)
    with daemon.planner() as planner:
        for index in range(count):
            plan = planner.Plan(task="grasp-plan")["plan"]
            # The latency the plan predicts, scaled to the reported length: a run that could have happened.
            tokens = 150 + index % 50
            latency = plan["predicted"]["latencyMs"] * tokens / max(1.0, plan["predicted"]["meanOutputTokens"])
            reply = planner.Report(requestId=plan["requestId"], latencyMs=latency, outputTokens=tokens, correct=rng.random() < 0.3)
            assert reply["accepted"], reply
    return reply


def test_an_acknowledged_report_survives_sigkill_and_teaches_after_restart(daemon, tmp_path):
    """600 Plan and Report pairs, SIGKILL right after the 600th reply: all 600 runs and outcomes are in the store,
    and after a restart the front's learned accuracies match a daemon that drained its queue, within 1 point."""
    import sqlite3
    daemon.start(explore="off")
    run_reports(daemon, 600, seed=3)
    daemon.process.kill()
    daemon.process.wait(timeout=5)
    with sqlite3.connect(os.path.join(daemon.state, "observations.sqlite")) as db:
        runs = db.execute("SELECT COUNT(*) FROM run").fetchone()[0]
        outcomes = db.execute("SELECT COUNT(*) FROM outcome").fetchone()[0]
    assert (runs, outcomes) == (600, 600), (runs, outcomes)
    daemon.start(explore="off")
    with daemon.planner() as planner:
        killed = frontier_learned(planner)
    daemon.stop()

    drained = Daemon(str(tmp_path))
    drained.start(explore="off")
    run_reports(drained, 600, seed=3)
    with drained.planner() as planner:
        drained.settle(planner)
        reference = frontier_learned(planner)
    drained.stop()
    assert killed.keys() == reference.keys()
    worst = max(abs(killed[k] - reference[k]) for k in reference)
    print(f"600 reports, SIGKILL after the last reply: {runs} runs and {outcomes} outcomes stored; "
          f"learned front within {worst * 100:.2f} points of a drained daemon's")
    assert worst <= 0.01


def test_exploration_keeps_to_its_rate_and_is_shown_where_plans_are_read(tmp_path):
    """`explore: thompson` explores about explore_rate of the plans (10 % by default), not nearly all of them (37 of
    40 before; 78 of 100 at 30 s, where five configurations are within 5 points). status counts them and the accuracy they gave up, within
    the cap; `plan --socket` and `watch` mark each explored plan."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("kind: policy\nglobal:\n  explore: thompson\n")
    socket_path = str(tmp_path / "planner.sock")
    process = subprocess.Popen([BINARY, "serve", "--socket", socket_path, "--policy", str(policy), "--rails", "none"],
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            if os.path.exists(socket_path):
                break
            time.sleep(0.05)
        watcher = subprocess.Popen([BINARY, "watch", "--socket", socket_path], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        with varlink.Client(address="unix:" + socket_path).open("io.edgeplan.Planner") as planner:
            plans = [planner.Plan(task="mmlu-redux", deadlineMs=30000.0)["plan"] for _ in range(300)]
            status = planner.Status()
        explored = sum(plan["explored"] for plan in plans)
        texts = [subprocess.run([BINARY, "plan", "--socket", socket_path, "--task", "mmlu-redux", "--deadline", "30s"],
                                capture_output=True, text=True, check=True).stdout for _ in range(100)]
        time.sleep(0.5)
        watcher.terminate()
        watched = watcher.communicate(timeout=10)[0].splitlines()
        status_text = subprocess.run([BINARY, "status", "--socket", socket_path], capture_output=True, text=True,
                                     check=True).stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    contenders = {(p["model"], p["quantization"], p["mode"], p.get("tokenBudget"), p["parallel"]) for p in plans}
    print(f"explored {explored} of 300 plans, {len(contenders)} configurations; status: {status['exploration']}")
    assert 1 <= explored <= 54, explored
    exploration = status["exploration"]
    assert exploration["mode"] == "thompson" and exploration["rate"] == 0.1 and exploration["explored"] == explored
    assert abs(exploration["expectedLossCap"] - 0.005) < 1e-12
    assert 0 < exploration["meanLossPerPlan"] <= exploration["expectedLossCap"]
    marked = [text for text in texts if "(explored: a near-best configuration" in text.splitlines()[0]]
    assert f"plans 400 (explored {explored + len(marked)} = " in status_text, status_text
    assert 1 <= len(marked) <= 30, len(marked)
    decisions = [line for line in watched if " decision " in line]
    assert len(decisions) == 400 and sum(line.endswith(", explored") for line in decisions) == explored + len(marked)
