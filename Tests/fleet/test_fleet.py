"""The fleet on a real PostgreSQL: robots (real daemons) upload their runs and outcomes with `edgeplan fleet sync`,
`fleet aggregate` pools them and flags the robot that differs, each robot's role sees and writes only its own rows,
and link cuts in the middle of uploads lose and duplicate nothing."""
import json
import math
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time

import pytest
import varlink

from conftest import EDGEPLAN, ROOT, edgeplan

CUTS = int(os.environ.get("EDGEPLAN_FLEET_CUTS", "20"))
CLASS = "jetson-agx-orin-64gb"
_predicted = {}


def predicted_ms(model, quantization, parallel, tokens, input_tokens=256):
    """The bundled profile's latency for a run, as the aggregate predicts it."""
    key = (model, quantization, parallel, tokens, input_tokens)
    if key not in _predicted:
        _predicted[key] = json.loads(edgeplan("predict", "--model", model, "--quant", quantization, "--input", str(input_tokens),
                                              "--output", str(tokens), "--parallel", str(parallel), "--json").stdout)["latencyMs"]
    return _predicted[key]


class Robot:
    """A robot: its role in the fleet, a real daemon with a state directory, and a policy with a fleet: section."""

    def __init__(self, postgres, root, name, extra_policy="", start=True, fleet=True, batch_size=16, robot_id=None):
        self.name = name
        self.directory = os.path.join(root, name)
        os.makedirs(self.directory)
        self.state = os.path.join(self.directory, "state")
        self.socket = os.path.join(self.directory, "planner.sock")
        self.password_file = os.path.join(self.directory, "fleet-password")
        with open(self.password_file, "w") as handle:
            handle.write(f"{name}-secret\n")
        self.policy = os.path.join(self.directory, "policy.yaml")
        section = (f"fleet:\n  host: {postgres.socket_dir}\n  port: {postgres.port}\n  user: {name}\n"
                   f"  password_file: {self.password_file}\n  batch_size: {batch_size}\n"
                   + (f"  robot_id: {robot_id}\n" if robot_id else "")) if fleet else ""
        with open(self.policy, "w") as handle:
            handle.write("kind: policy\n" + section + extra_policy)
        if fleet:
            edgeplan("fleet", "add-robot", name, "--robot-password-file", self.password_file, "--device-class", CLASS,
                     *postgres.admin_args())
        self.process = None
        if start:
            self.start()

    def start(self, sysfs_root=None, log=None):
        """`log`: a file that gets the daemon's journal lines (its standard error)."""
        self.process = subprocess.Popen([EDGEPLAN, "serve", "--socket", self.socket, "--policy", self.policy, "--state-dir",
                                         self.state, "--rails", "none"]
                                        + (["--sysfs-root", sysfs_root] if sysfs_root else []),
                                        stderr=open(log, "a") if log else subprocess.DEVNULL)
        for _ in range(400):
            if os.path.exists(self.socket):
                break
            time.sleep(0.05)

    def report(self, count, slow=1.0, accuracy=0.6, seed=1, task="mmlu-redux", deadline_ms=8000.0, median_tokens=None):
        """Plans and reports `count` runs, `slow` times the bundled profile's latency, right with chance `accuracy`;
        each sample 100 tokens long, or drawn from a log-normal around `median_tokens` (sigma 0.4)."""
        rng = random.Random(seed)
        with varlink.Client(address="unix:" + self.socket).open("io.edgeplan.Planner") as planner:
            for _ in range(count):
                plan = planner.Plan(task=task, deadlineMs=deadline_ms, inputTokens=256)["plan"]
                samples = [100 if median_tokens is None else max(1, round(rng.lognormvariate(0, 0.4) * median_tokens))
                           for _ in range(plan["parallel"])]
                latency = predicted_ms(plan["model"], plan["quantization"], plan["parallel"], max(samples)) * slow
                reply = planner.Report(requestId=plan["requestId"], latencyMs=latency, correct=rng.random() < accuracy,
                                       sampleOutputTokens=samples)
                assert reply["accepted"], reply

    def plan(self, task, deadline_ms):
        with varlink.Client(address="unix:" + self.socket).open("io.edgeplan.Planner") as planner:
            return planner.Plan(task=task, deadlineMs=deadline_ms, inputTokens=256)["plan"]

    def local_counts(self):
        with sqlite3.connect(os.path.join(self.state, "observations.sqlite")) as db:
            return db.execute("SELECT count(*), coalesce(max(id), 0) FROM run").fetchone(), \
                db.execute("SELECT count(*) FROM outcome").fetchone()[0]

    def sync(self, check=True):
        return edgeplan("fleet", "sync", "--once", "--policy", self.policy, "--state-dir", self.state, check=check)

    def learned(self, task, model):
        """The robot's learned single-sample accuracy for a task and model, once its reports are learned."""
        with varlink.Client(address="unix:" + self.socket).open("io.edgeplan.Planner") as planner:
            for _ in range(400):
                status = planner.Status()
                if status["calibration"]["pendingReports"] == 0:
                    break
                time.sleep(0.02)
            for group in status["learning"]["groups"]:
                if group["task"] == task and group["model"] == model:
                    return group["singleSampleAccuracy"], status
        return None, status

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)


@pytest.fixture
def robots(postgres, tmp_path):
    edgeplan("fleet", "init", *postgres.admin_args())
    made = []

    def make(name, **options):
        robot = Robot(postgres, str(tmp_path), name, **options)
        made.append(robot)
        return robot
    yield make
    for robot in made:
        robot.stop()


def aggregate(postgres):
    return json.loads(edgeplan("fleet", "aggregate", *postgres.admin_args(), "--json").stdout)


def calibration(body, model="DSR1-Qwen-1.5B"):
    return next(item for item in body["calibrations"] if item["model"] == model and item["deviceClass"] == CLASS)


def test_robots_upload_and_the_one_that_differs_is_flagged(postgres, robots):
    """Three daemons report; the third runs 15 % slower (a blocked fan). After sync the fleet holds exactly each
    robot's rows; the aggregate flags the slow one, and the pooled calibration of the others moves by under 2 %."""
    fleet = [robots("r1"), robots("r2"), robots("r3")]
    fleet[0].report(40, seed=1)
    fleet[1].report(40, seed=2)
    for robot in fleet[:2]:
        robot.sync()
    before = calibration(aggregate(postgres)["body"])
    fleet[2].report(40, slow=1.15, seed=3)
    fleet[2].sync()
    body = aggregate(postgres)["body"]
    after = calibration(body)
    for robot in fleet:
        (runs, _), outcomes = robot.local_counts()
        stored = postgres.psql(f"SELECT count(*), count(DISTINCT seq) FROM runs WHERE robot = '{robot.name}'").stdout.split("|")
        assert [int(value) for value in stored] == [runs, runs], (robot.name, stored, runs)
        assert int(postgres.psql(f"SELECT count(*) FROM outcomes WHERE robot = '{robot.name}'").stdout) == outcomes
    moved = abs(after["latencyRatio"] / before["latencyRatio"] - 1)
    print(f"pooled latency ratio {before['latencyRatio']:.4f} before r3, {after['latencyRatio']:.4f} after "
          f"({moved * 100:.2f} % moved); r3's effect {after['effects']['r3']:.3f}; flagged {body['flagged']}")
    assert after["flagged"] == ["r3"] and body["flagged"] == ["r3"]
    assert moved < 0.02 and abs(after["effects"]["r3"] - 1.15) < 0.03
    assert not any(group["bounded"].get("r3") for group in body["accuracy"])
    status = json.loads(edgeplan("fleet", "status", *postgres.admin_args(), "--json").stdout)
    rows = {robot["robot"]: robot for robot in status["robots"]}
    assert rows["r3"]["flagged"] and not rows["r1"]["flagged"]
    assert all(robot["runsLag"] == 0 and robot["outcomesLag"] == 0 and robot["lastError"] is None for robot in rows.values())
    assert "r3 flagged" in status["versions"][0]["changes"]["changed"]
    text = edgeplan("fleet", "status", *postgres.admin_args()).stdout
    assert "3 robots, 1 flagged" in text and "FLAGGED" in text
    # The robots pull the version: it lands in their state directory.
    fleet[0].sync()
    pulled = json.load(open(os.path.join(fleet[0].state, "fleet-version.json")))
    assert pulled["version"] == status["versions"][0]["version"] and pulled["body"]["flagged"] == ["r3"]


def test_each_robot_writes_and_reads_only_its_own_rows(postgres, robots):
    r1, r2 = robots("r1"), robots("r2")
    r1.report(3)
    r2.report(3)
    r1.sync()
    r2.sync()
    as_r1 = dict(user="r1", password="r1-secret", check=False)
    own = r1.local_counts()[0][0]
    assert postgres.psql("SELECT count(*) FROM runs", **as_r1).stdout.strip() == str(own)
    assert postgres.psql("SELECT robot FROM robots", **as_r1).stdout.strip() == "r1"
    forged = postgres.psql("INSERT INTO runs (robot, seq, time, model, quantization, mode, parallel, input_tokens, "
                           "output_tokens, latency_s, device_class) VALUES ('r2', 999, 0, 'm', 'fp16', 'direct', 1, 1, 1, 1, 'x')",
                           **as_r1)
    assert forged.returncode != 0 and "row-level security" in forged.stderr, forged.stderr
    for sql in ["INSERT INTO fleet_versions (body, changes) VALUES ('{}', '{}')", "UPDATE runs SET latency_s = 0",
                "DELETE FROM runs", "UPDATE robots SET device_class = 'other'"]:
        refused = postgres.psql(sql, **as_r1)
        assert refused.returncode != 0 and "permission denied" in refused.stderr, (sql, refused.stderr)
    # Nothing of r2's changed.
    assert int(postgres.psql("SELECT count(*) FROM runs WHERE robot = 'r2'").stdout) == r2.local_counts()[0][0]
    # A month's partition is not a way around the policy: a robot may not read it directly.
    month = postgres.psql("SELECT DISTINCT tableoid::regclass FROM runs").stdout.split()
    assert month and all(name.startswith("runs_") for name in month), month
    direct = postgres.psql(f"SELECT count(*) FROM {month[0]}", **as_r1)
    assert direct.returncode != 0 and "permission denied" in direct.stderr, direct.stderr


def test_fleet_status_shows_each_robots_id_and_roles_that_share_one(postgres, robots):
    """Each upload records the robot's own id: its policy's robot_id, or the machine id. Two roles reporting one id
    (one robot's credentials copied to another, say) are shown as such."""
    arm1, arm2, other = robots("r1", robot_id="arm-7"), robots("r2", robot_id="arm-7"), robots("r3")
    for robot in (arm1, arm2, other):
        robot.report(1)
        robot.sync()
    status = json.loads(edgeplan("fleet", "status", *postgres.admin_args(), "--json").stdout)
    by_role = {robot["robot"]: robot for robot in status["robots"]}
    assert by_role["r1"]["robotId"] == "arm-7" and by_role["r1"]["sharesIdWith"] == ["r2"]
    assert by_role["r2"]["sharesIdWith"] == ["r1"]
    machine = open("/etc/machine-id").read().strip() if os.path.exists("/etc/machine-id") else ""
    assert by_role["r3"]["robotId"] == (machine or None) and by_role["r3"]["sharesIdWith"] == []
    text = edgeplan("fleet", "status", *postgres.admin_args()).stdout
    assert "3 robots, 0 flagged, 1 id(s) reported by more than one role" in text and "SAME ID AS r2" in text, text


def test_calibrations_are_pooled_per_power_mode(postgres, robots, tmp_path):
    """A daemon records the power mode each run ran in (nvpmodel's status) and the sync uploads it; robots in a
    slower mode are pooled on their own, not flagged against the others."""
    root = tmp_path / "sysfs"
    (root / "var" / "lib" / "nvpmodel").mkdir(parents=True)
    (root / "var" / "lib" / "nvpmodel" / "status").write_text("pmode:0002\n")
    robot = robots("r1", start=False)
    robot.start(sysfs_root=str(root))
    time.sleep(1.5)
    robot.report(3)
    robot.sync()
    assert postgres.psql("SELECT DISTINCT power_mode FROM runs WHERE robot = 'r1'").stdout.strip() == "pmode:0002"
    for name in ["r2", "r3", "r4"]:
        robots(name, start=False)
    latency = predicted_ms("DSR1-Qwen-1.5B", "fp16", 4, 100) / 1000
    for name, mode, ratio in [("r2", "pmode:0000", 1.0), ("r3", "pmode:0000", 1.01), ("r4", "pmode:0002", 1.6),
                              ("r1", "pmode:0002", 1.62)]:
        insert_as(postgres, name, f"""
            INSERT INTO runs (seq, time, model, quantization, mode, parallel, input_tokens, output_tokens, latency_s,
              device_class, predicted_s, power_mode)
            SELECT 100 + g, g, 'DSR1-Qwen-1.5B', 'fp16', 'hard', 4, 256, 100, {latency * ratio}, '{CLASS}', {latency},
              '{mode}'
            FROM generate_series(1, 10) g""")
    body = aggregate(postgres)["body"]
    modes = {item["powerMode"]: item for item in body["calibrations"] if item["model"] == "DSR1-Qwen-1.5B"}
    print({mode: (round(item["latencyRatio"], 3), item["robots"], item["flagged"]) for mode, item in modes.items()})
    assert set(modes) == {"pmode:0000", "pmode:0002"} and body["flagged"] == []
    assert abs(modes["pmode:0000"]["latencyRatio"] - 1.005) < 0.01 and abs(modes["pmode:0002"]["latencyRatio"] - 1.61) < 0.02


def test_link_cuts_mid_upload_lose_and_duplicate_nothing(postgres, robots):
    """PostgreSQL is stopped (immediately, as a crash or a cut cable would) and restarted while the robot keeps
    reporting and the sync service keeps uploading, one row a transaction so that it is mid-upload nearly always;
    afterwards the fleet holds every row once."""
    robot = robots("r1", batch_size=1)
    stop = threading.Event()

    def keep_reporting():
        seed = 0
        while not stop.is_set():
            seed += 1
            robot.report(5, seed=seed)
    reporter = threading.Thread(target=keep_reporting)
    reporter.start()
    service = subprocess.Popen([EDGEPLAN, "fleet", "sync", "--policy", robot.policy, "--state-dir", robot.state,
                                "--interval", "100ms", "--timeout", "3s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    rng = random.Random(5)
    errors_seen = 0
    try:
        for _ in range(CUTS):
            time.sleep(rng.uniform(0.2, 0.6))
            postgres.stop("immediate")
            time.sleep(rng.uniform(0.1, 0.4))
            state = json.load(open(os.path.join(robot.state, "fleet-sync.json")))
            errors_seen += state["lastError"] is not None
            postgres.start()
    finally:
        stop.set()
        reporter.join(60)
        service.send_signal(signal.SIGTERM)
        stdout, stderr = service.communicate(timeout=20)
    robot.sync()
    (runs, last), outcomes = robot.local_counts()
    count, distinct, top = [int(value) for value in
                            postgres.psql("SELECT count(*), count(DISTINCT seq), coalesce(max(seq), 0) FROM runs").stdout.split("|")]
    stored_outcomes = int(postgres.psql("SELECT count(*) FROM outcomes").stdout)
    print(f"{CUTS} cuts, {runs} runs and {outcomes} outcomes on the robot: fleet holds {count} runs ({count - distinct} "
          f"duplicated, {runs - count} lost) and {stored_outcomes} outcomes; the service met the cut "
          f"{stderr.count('fleet sync:')} times ({errors_seen} seen in its state file) in {stdout.count('sent ')} good rounds")
    assert runs > 50 and count == distinct == runs and top == last and stored_outcomes == outcomes
    # The cuts met the service: it said so, and kept going.
    assert stderr.count("fleet sync:") >= 1 and errors_seen >= CUTS // 4, (errors_seen, stderr[-2000:])


def insert_as(postgres, robot, sql):
    result = postgres.psql(sql, user=robot, password=f"{robot}-secret")
    return result


def test_a_lying_robot_moves_the_fleet_no_more_than_the_bound(postgres, robots):
    """Three honest robots are right 60 % of the time; a fourth claims it is always right (or never), 400 times. No
    one robot moves the pooled accuracy by more than 5 points. One that reports a third of its true latencies is
    flagged, and the others' calibration holds."""
    names = ["r1", "r2", "r3", "r4"]
    for name in names:
        robots(name)
    latency = predicted_ms("DSR1-Qwen-1.5B", "fp16", 4, 100) / 1000

    def upload(name, successes, trials, ratio, tokens=100):
        insert_as(postgres, name, f"""
            INSERT INTO outcomes (seq, time, task_class, model, quantization, mode, budget_tokens, capped, parallel,
              correct, sample_output_tokens)
            SELECT g, g, 'mmlu-redux', 'DSR1-Qwen-1.5B', 'fp16', 'hard', 256, true, 4, g <= {successes},
              '{tokens},{tokens},{tokens + 10},{tokens + 20}'
            FROM generate_series(1, {trials}) g""")
        insert_as(postgres, name, f"""
            INSERT INTO runs (seq, time, model, quantization, mode, parallel, input_tokens, output_tokens, latency_s,
              device_class, predicted_s)
            SELECT g, g, 'DSR1-Qwen-1.5B', 'fp16', 'hard', 4, 256, 100, {latency * ratio} * (1 + 0.01 * (g % 3)), '{CLASS}',
              {latency}
            FROM generate_series(1, 30) g""")
    for name in names[:3]:
        upload(name, 180, 300, 1.0)
    honest = 0.6
    upload("r4", 400, 400, 1 / 3)
    body = aggregate(postgres)["body"]
    group = next(item for item in body["accuracy"] if item["model"] == "DSR1-Qwen-1.5B")
    runs = calibration(body)
    print(f"optimistic liar: pooled {group['accuracy']:.3f} against honest {honest:.3f} (bounded {group['bounded']}); "
          f"its latencies at a third: flagged {runs['flagged']}, pooled ratio {runs['latencyRatio']:.4f}")
    # Flagged for its latencies, r4 is left out of the accuracy too; unflagged, its influence is bounded.
    assert runs["flagged"] == ["r4"] and abs(runs["latencyRatio"] / 1.01 - 1) < 0.02
    assert abs(group["accuracy"] - honest) <= 0.05 + 1e-9
    postgres.psql("TRUNCATE runs, outcomes")
    for name in names[:3]:
        upload(name, 180, 300, 1.0)
    upload("r4", 400, 400, 1.0)
    group = next(item for item in aggregate(postgres)["body"]["accuracy"] if item["model"] == "DSR1-Qwen-1.5B")
    assert group["bounded"].get("r4", 0) > 0.05 and abs(group["accuracy"] - (honest + 0.05)) < 1e-6, group
    postgres.psql("TRUNCATE runs, outcomes")
    for name in names[:3]:
        upload(name, 180, 300, 1.0)
    upload("r4", 0, 400, 1.0, tokens=10)
    body = aggregate(postgres)["body"]
    group = next(item for item in body["accuracy"] if item["model"] == "DSR1-Qwen-1.5B")
    print(f"pessimistic liar: pooled {group['accuracy']:.3f} against honest {honest:.3f}")
    assert group["bounded"].get("r4", 0) < -0.05 and abs(group["accuracy"] - (honest - 0.05)) < 1e-6, group
    assert list(group["bounded"]) == ["r4"], "the honest robots are not bounded for the liar's pull"
    # It also reported a tenth of its lengths: the pooled geometric-mean length moves by the bound (10 %), which the
    # version's twenty quantiles show to within a point, and the median not at all.
    lengths = next(item for item in body["lengths"] if item["model"] == "DSR1-Qwen-1.5B")
    honest_mean = math.exp((2 * math.log(100) + math.log(110) + math.log(120)) / 4)
    pooled_mean = math.exp(sum(math.log(q) for q in lengths["quantileTokens"]) / len(lengths["quantileTokens"]))
    moved = pooled_mean / honest_mean - 1
    print(f"liar at a tenth of the lengths: pooled geometric-mean length moved {moved:+.1%} "
          f"(bounded {lengths['bounded']}), median {lengths['quantileTokens'][9]}-{lengths['quantileTokens'][10]} tokens")
    assert list(lengths["bounded"]) == ["r4"] and lengths["bounded"]["r4"] < -0.10 and -0.11 <= moved < 0, lengths
    assert 100 <= lengths["quantileTokens"][9] <= lengths["quantileTokens"][10] <= 110, lengths


GRASP = """tasks:
  grasp-plan:
    like: mmlu-redux
    deadline: 60s
    input_tokens: 256
    max_parallel: 1
    allowed_models: [Qwen2.5-7B-it]
    allowed_quantizations: [fp16]
    allowed_modes: [direct]
"""


def test_a_new_robot_starts_from_what_the_fleet_learned(postgres, robots):
    """grasp-plan borrows MMLU-Redux's table (Qwen2.5-7B-it direct: 60.9 %, 40 tokens assumed), but on this fleet's
    prompts the model is right 30 % of the time and answers in about 130 tokens. One robot learns that from 300
    reports; a new robot that pulls the fleet's version starts near the truth, where a robot alone needs its own
    reports to get there."""
    truth, median_tokens = 0.30, 120
    truth_tokens = median_tokens * math.exp(0.4 ** 2 / 2)
    veteran = robots("r1", extra_policy=GRASP)
    prior_tokens = veteran.plan("grasp-plan", 60000.0)["predicted"]["meanOutputTokens"]
    veteran.report(300, accuracy=truth, seed=11, task="grasp-plan", deadline_ms=60000.0, median_tokens=median_tokens)
    veteran.sync()
    version = aggregate(postgres)
    pooled = next(item for item in version["body"]["lengths"] if item["task"] == "grasp-plan")
    assert pooled["robots"] == 1 and pooled["samples"] == 300
    newcomer = robots("r2", extra_policy=GRASP, start=False)
    newcomer.sync()
    newcomer.start()
    with_fleet, status = newcomer.learned("grasp-plan", "Qwen2.5-7B-it")
    assert status["fleet"]["version"] >= 1 and status["fleet"]["priorOutcomes"] == 400, status["fleet"]
    assert status["fleet"]["sync"]["lastError"] is None
    fleet_plan = newcomer.plan("grasp-plan", 60000.0)["predicted"]
    alone = robots("r3", extra_policy=GRASP, fleet=False)
    needed = needed_tokens = None
    for count in range(1, 201):
        alone.report(1, accuracy=truth, seed=100 + count, task="grasp-plan", deadline_ms=60000.0,
                     median_tokens=median_tokens)
        learned, _ = alone.learned("grasp-plan", "Qwen2.5-7B-it")
        if needed is None and learned is not None and abs(learned - truth) <= 0.05:
            needed = count
        mean_tokens = alone.plan("grasp-plan", 60000.0)["predicted"]["meanOutputTokens"]
        if needed_tokens is None and abs(mean_tokens / truth_tokens - 1) <= 0.2:
            needed_tokens = count
        if needed and needed_tokens:
            break
    print(f"within 5 points of the truth ({truth:.0%}): with the fleet after 0 reports ({with_fleet:.3f}), "
          f"alone after {needed} reports")
    print(f"mean output length within 20 % of the truth ({truth_tokens:.0f} tokens; table {prior_tokens:.0f}): with the "
          f"fleet after 0 reports ({fleet_plan['meanOutputTokens']:.0f}, {fleet_plan['lengthSource']}), "
          f"alone after {needed_tokens} reports")
    assert with_fleet is not None and abs(with_fleet - truth) <= 0.05
    assert needed is None or needed >= 10
    assert fleet_plan["lengthSource"] == "learned"
    assert abs(fleet_plan["meanOutputTokens"] / truth_tokens - 1) <= 0.2, fleet_plan
    assert needed_tokens is None or needed_tokens >= 10


def test_the_daemon_shows_the_fleet_in_status_and_metrics(postgres, robots, tmp_path):
    """Status and the metrics file carry the fleet version learned and the sync's lag and failure; the sync's own
    output says what it sent and what the fleet lacked."""
    robot = robots("r1", start=False)
    robot.process = subprocess.Popen([EDGEPLAN, "serve", "--socket", robot.socket, "--policy", robot.policy, "--state-dir",
                                      robot.state, "--rails", "none", "--metrics-textfile", str(tmp_path / "m.prom"),
                                      "--metrics-interval", "200ms"], stderr=subprocess.DEVNULL)
    for _ in range(400):
        if os.path.exists(robot.socket):
            break
        time.sleep(0.05)
    robot.report(5)
    sent = robot.sync().stdout
    assert "sent 5 runs and 5 outcomes (the fleet lacked 5 and 5)" in sent, sent
    postgres.stop("immediate")
    failed = robot.sync(check=False)
    assert failed.returncode == 74 and "cannot connect to the fleet store" in failed.stderr, failed.stderr
    with varlink.Client(address="unix:" + robot.socket).open("io.edgeplan.Planner") as planner:
        fleet = planner.Status()["fleet"]
    assert fleet["sync"]["lastError"].startswith("cannot connect") and fleet["sync"]["lastSuccess"] is not None
    text = ""
    for _ in range(100):
        text = open(tmp_path / "m.prom").read() if os.path.exists(tmp_path / "m.prom") else ""
        if "edgeplan_fleet_sync_failing 1" in text:
            break
        time.sleep(0.1)
    assert "edgeplan_fleet_sync_failing 1" in text, text


def test_the_scale_benchmark_runs_in_its_short_setting(postgres):
    """Benchmarks/FleetBenchmark at a CI size (20 robots x 500 runs and 50 outcomes); Benchmarks/fleet-scale.sh runs
    it at 1,000 robots x 10,000 runs and 1,000 outcomes."""
    benchmark = os.path.join(os.path.dirname(EDGEPLAN), "FleetBenchmark")
    result = subprocess.run([benchmark, postgres.socket_dir, str(postgres.port), "fleet_owner", postgres.owner_password_file,
                             "20", "500", "4", "ci"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert "20 robots x (500 runs + 50 outcomes) = 11000 rows (fleet holds 10000 runs)" in result.stdout
    # Three variants calibrated; four task classes x three models, pooled for accuracy and for lengths.
    assert "-> 3 calibrations, 12 accuracy and 12 length groups, a view for each of 20 robots)" in result.stdout, result.stdout
    assert int(postgres.psql("SELECT count(DISTINCT robot) FROM runs").stdout) == 20
    assert int(postgres.psql("SELECT count(*) FROM outcomes").stdout) == 1000


@pytest.mark.tls
def test_tls_is_verified_against_the_fleets_own_ca(postgres, robots):
    """Over TCP the robot speaks TLS, verifies the server's certificate against the fleet's CA (`tls_ca_file`) and
    the host name, refuses a server its CA did not sign rather than fall back to plaintext, and with `require` refuses
    a server that offers no TLS."""
    robot = robots("r1")
    robot.report(3)

    def sync_with(tls, ca_file=None, host="127.0.0.1"):
        with open(robot.policy, "w") as handle:
            handle.write(f"kind: policy\nfleet:\n  host: {host}\n  port: {postgres.port}\n  user: r1\n"
                         f"  password_file: {robot.password_file}\n  tls: {tls}\n"
                         + (f"  tls_ca_file: {ca_file}\n" if ca_file else ""))
        return edgeplan("fleet", "sync", "--once", "--timeout", "10s", "--policy", robot.policy, "--state-dir",
                        robot.state, check=False)

    verified = sync_with("require", postgres.ca_file)
    assert verified.returncode == 0 and "sent 3 runs and 3 outcomes" in verified.stdout, verified.stderr
    authorized = [line for line in postgres.log().splitlines() if "connection authorized: user=r1" in line]
    assert authorized and all("SSL enabled" in line for line in authorized), authorized
    assert sync_with("require", postgres.ca_file, host="localhost").returncode == 0
    for tls, ca_file in [("require", postgres.impostor_ca_file), ("prefer", postgres.impostor_ca_file),
                         ("prefer", None)]:
        refused = sync_with(tls, ca_file)
        print(f"tls {tls}, CA {os.path.basename(ca_file or 'system')}: exit {refused.returncode}: "
              f"{refused.stderr.strip().splitlines()[-1] if refused.stderr.strip() else ''}")
        assert refused.returncode == 74 and "certificate" in refused.stderr.lower(), refused.stderr
    # A robot that logs in by certificate (the server accepts nothing else for it), with no password at all.
    postgres.authenticate_by_certificate("r2")
    r2 = robots("r2")
    r2.report(2, seed=3)
    with open(r2.policy, "w") as handle:
        handle.write(f"kind: policy\nfleet:\n  host: localhost\n  port: {postgres.port}\n  user: r2\n  tls: require\n"
                     f"  tls_ca_file: {postgres.ca_file}\n  tls_cert_file: {postgres.client_cert_file}\n"
                     f"  tls_key_file: {postgres.client_key_file}\n")
    time.sleep(0.5)
    by_certificate = r2.sync(check=False)
    assert by_certificate.returncode == 0 and "sent 2 runs and 2 outcomes" in by_certificate.stdout, by_certificate.stderr
    assert any("connection authorized: user=r2" in line and "SSL enabled" in line for line in postgres.log().splitlines())
    with open(r2.policy, "w") as handle:
        handle.write(f"kind: policy\nfleet:\n  host: localhost\n  port: {postgres.port}\n  user: r2\n  tls: require\n"
                     f"  tls_ca_file: {postgres.ca_file}\n  password_file: {r2.password_file}\n")
    by_password = r2.sync(check=False)
    print(f"r2 by password where its rule says certificate: {by_password.stderr.strip().splitlines()[-1]}")
    assert by_password.returncode == 74 and "certificate" in by_password.stderr, by_password.stderr
    missing = sync_with("require", "/nonexistent/ca.pem")
    assert missing.returncode != 0 and "cannot read the fleet's CA file /nonexistent/ca.pem" in missing.stderr
    # The server stops offering TLS: require refuses it, prefer goes on in plaintext.
    postgres.stop()
    postgres.ssl = False
    postgres.start()
    plain_refused = sync_with("require", postgres.ca_file)
    print(f"tls require, server without TLS: exit {plain_refused.returncode}: {plain_refused.stderr.strip()[-200:]}")
    assert plain_refused.returncode == 74 and "tls" in plain_refused.stderr.lower(), plain_refused.stderr
    robot.report(2, seed=2)
    plain = sync_with("prefer", postgres.ca_file)
    assert plain.returncode == 0 and "sent 2 runs and 2 outcomes" in plain.stdout, plain.stderr
    assert any("connection authorized: user=r1" in line and "SSL enabled" not in line
               for line in postgres.log().splitlines())


def test_an_older_fleet_is_upgraded_to_monthly_partitions_keeping_every_row(postgres, tmp_path):
    """A fleet at the schema before partitioning, with rows from a robot's daemon and older rows, is upgraded by
    `fleet init`: every row is kept, each in its month (or in the default partition when far outside), the robots'
    uploads go on, and an aggregate over a window reads only the rows in it."""
    edgeplan("fleet", "init", "--up-to", "2", *postgres.admin_args())
    robot = Robot(postgres, str(tmp_path), "r1")
    Robot(postgres, str(tmp_path), "r0", start=False)
    try:
        robot.report(5)
        # A version an older aggregate wrote, with no views.
        postgres.psql("""INSERT INTO fleet_versions (body, changes) VALUES ('{"accuracy": [], "lengths": []}', '{}')""")
        sent = robot.sync().stdout
        assert "sent 5 runs and 5 outcomes" in sent, sent
        # A version pooled before views is not written for the daemon: it could not leave the robot's rows out.
        assert "pooled without per-robot views" in sent and not os.path.exists(os.path.join(robot.state, "fleet-version.json"))
        # Another robot's older rows: some from forty days ago, some with a clock at 1970.
        forty_days_ago = time.time() - 40 * 86400
        insert_as(postgres, "r0", f"""
            INSERT INTO runs (seq, time, model, quantization, mode, parallel, input_tokens, output_tokens, latency_s,
              device_class, predicted_s)
            SELECT 1000 + g, CASE WHEN g <= 10 THEN g ELSE {forty_days_ago} + g END, 'DSR1-Qwen-1.5B', 'fp16', 'hard',
              4, 256, 100, 1.0, '{CLASS}', 1.0
            FROM generate_series(1, 30) g""")
        before = postgres.psql("SELECT count(*), sum(seq), round(sum(latency_s)::numeric, 6) FROM runs").stdout
        upgraded = edgeplan("fleet", "init", *postgres.admin_args()).stdout
        assert "4 migration(s) applied" in upgraded, upgraded
        assert postgres.psql("SELECT count(*), sum(seq), round(sum(latency_s)::numeric, 6) FROM runs").stdout == before
        where = dict(line.split("|") for line in postgres.psql(
            "SELECT tableoid::regclass, count(*) FROM runs GROUP BY 1").stdout.split())
        now_month = time.strftime("runs_%Y_%m", time.gmtime())
        old_month = time.strftime("runs_%Y_%m", time.gmtime(forty_days_ago + 10))
        print(f"after the upgrade: {where}")
        assert where.get("runs_default") == "10" and int(where.get(now_month, 0)) >= 5, where
        assert sum(int(count) for count in where.values()) == 35
        assert int(where.get(old_month, 0)) >= 20 - (5 if old_month == now_month else 0), where
        # The robot goes on uploading to the new tables, and an upload resent stores nothing twice.
        robot.report(3, seed=5)
        assert "sent 3 runs and 3 outcomes" in robot.sync().stdout
        assert "the fleet lacked 0 and 0" in robot.sync().stdout
        assert int(postgres.psql("SELECT count(*) FROM runs").stdout) == 38
        # A window of 30 days pools the robot's 8 runs, not the older 30.
        windowed = edgeplan("fleet", "aggregate", "--window", "30d", *postgres.admin_args()).stdout
        assert "from 8 runs of the last 30d" in windowed, windowed
        # A window's query reads its months only (and the default partition, which may hold any time).
        plan = postgres.psql(f"EXPLAIN SELECT count(*) FROM runs WHERE time >= {time.time() - 86400}").stdout
        assert now_month in plan and (old_month == now_month or old_month not in plan), plan
        bad = edgeplan("fleet", "aggregate", "--window", "soon", *postgres.admin_args(), check=False)
        assert bad.returncode == 64 and "--window" in bad.stderr, bad.stderr
    finally:
        robot.stop()


def test_the_readmes_fleet_commands_run_as_written(postgres, tmp_path):
    """The README's fleet block, line by line, against the test's PostgreSQL: its database, owner and robot files
    stand in for db.example's, and the robot is a real daemon that has reported."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = next(part.split("```")[0] for part in readme.split("```sh\n") if part.startswith("edgeplan fleet init"))
    lines = [line.split("#")[0].strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    robot_password = tmp_path / "robot-0042.pw"
    robot_password.write_text("robot-0042-secret\n")
    robot = None
    try:
        for line in lines:
            args = line.split()[1:]
            args = " ".join(args).replace("--host db.example --user fleet_owner --password-file owner-password",
                                          " ".join(postgres.admin_args())).replace("robot-0042.pw", str(robot_password))
            if args.startswith("fleet sync"):
                # The robot: a daemon with the policy's fleet section, some reports, then the line as written.
                robot = Robot(postgres, str(tmp_path), "robot-0042", fleet=False, extra_policy=(
                    f"fleet:\n  host: {postgres.socket_dir}\n  port: {postgres.port}\n  user: robot-0042\n"
                    f"  password_file: {robot_password}\n"))
                robot.report(4)
                args = args.replace("/etc/edgeplan/policy.yaml", robot.policy).replace("/var/lib/edgeplan", robot.state)
            result = edgeplan(*args.split())
            print(f"$ edgeplan {line.split(' ', 1)[1][:60]}...\n{result.stdout.strip()}")
            if args.startswith("fleet sync"):
                assert "sent 4 runs and 4 outcomes" in result.stdout, result.stdout
            if args.startswith("fleet status"):
                assert "robot-0042" in result.stdout and "lag 0" in result.stdout, result.stdout
        assert [line.split()[2] for line in lines] == ["init", "add-robot", "sync", "aggregate", "status"]
    finally:
        if robot:
            robot.stop()


class MuteServer:
    """Fault injection: a scripted server that answers PostgreSQL's startup (no TLS, no password) and then never
    answers a query, as a server whose link died mid-round looks to its client."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.startups = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client):
        def read(count):
            data = b""
            while len(data) < count:
                chunk = client.recv(count - len(data))
                if not chunk:
                    raise EOFError
                data += chunk
            return data

        def message(kind, body):
            return kind + struct.pack("!I", len(body) + 4) + body
        try:
            length, code = struct.unpack("!II", read(8))
            read(length - 8)
            self.startups += 1
            client.sendall(message(b"R", struct.pack("!I", 0)) + message(b"S", b"server_version\x0016.0\x00")
                           + message(b"K", struct.pack("!II", 1, 2)) + message(b"Z", b"I"))
            while client.recv(65536):
                pass
        except (EOFError, OSError):
            pass
        finally:
            client.close()


def test_a_server_that_stops_answering_mid_round_costs_a_deadline_not_the_service(tmp_path):
    """Every round against a server that never answers a query is given up at its deadline (--timeout), reported
    as such, and the service goes on to the next: it neither waits for ever nor piles up given-up rounds until it
    must restart."""
    server = MuteServer()
    password = tmp_path / "pw"
    password.write_text("x\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"kind: policy\nfleet:\n  host: 127.0.0.1\n  port: {server.port}\n  user: r1\n"
                      f"  password_file: {password}\n  tls: disable\n")
    service = subprocess.Popen([EDGEPLAN, "fleet", "sync", "--policy", str(policy), "--state-dir", str(tmp_path / "state"),
                                "--interval", "10ms", "--timeout", "1s"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(14)
        assert service.poll() is None, service.communicate()
    finally:
        service.send_signal(signal.SIGTERM)
        _, errors = service.communicate(timeout=20)
    given_up = [line for line in errors.splitlines() if "did not answer within 1.0 seconds; the connection was closed" in line]
    print(f"{len(given_up)} rounds given up at the deadline in 14 s over {server.startups} connections; the service still running")
    # At most 8 given up before a restart would be due: more than that, and the service was still running.
    assert len(given_up) > 8 and "never returned" not in errors, errors
    state = json.load(open(tmp_path / "state" / "fleet-sync.json"))
    assert "did not answer within" in state["lastError"], state


def test_pruned_months_are_gone_and_never_sent_again(postgres, tmp_path):
    """`fleet prune` drops the months older than a stretch whole (and older rows of the default partition); the
    robot whose rows they were does not send them again, and its lag stays 0."""
    edgeplan("fleet", "init", "--months-back", "4", *postgres.admin_args())
    robot = Robot(postgres, str(tmp_path), "r1")
    try:
        robot.report(5)
        robot.stop()
        # Its store's rows ran seventy days ago (a month that ended at least 39 days ago).
        old = 70 * 86400
        with sqlite3.connect(os.path.join(robot.state, "observations.sqlite")) as db:
            db.execute("UPDATE run SET time = time - ?", (old,))
            db.execute("UPDATE outcome SET time = time - ?", (old,))
        assert "sent 5 runs and 5 outcomes" in robot.sync().stdout
        month = time.strftime("runs_%Y_%m", time.gmtime(time.time() - old))
        assert postgres.psql("SELECT DISTINCT tableoid::regclass FROM runs").stdout.split() == [month]
        dry = edgeplan("fleet", "prune", "--older-than", "35d", "--dry-run", *postgres.admin_args()).stdout
        label = month[len("runs_"):].replace("_", "-")
        assert "would remove 5 runs and 5 outcomes older than 35d: months " in dry and label in dry, dry
        assert int(postgres.psql("SELECT count(*) FROM runs").stdout) == 5
        pruned = edgeplan("fleet", "prune", "--older-than", "35d", *postgres.admin_args()).stdout
        print(pruned.strip())
        assert "removed 5 runs and 5 outcomes older than 35d: months " in pruned and label in pruned, pruned
        assert int(postgres.psql("SELECT count(*) FROM runs").stdout) == 0
        assert postgres.psql(f"SELECT to_regclass('{month}')").stdout.strip() == ""
        # Nothing is sent again, and the robot is not behind.
        again = robot.sync().stdout
        assert "sent 0 runs and 0 outcomes (the fleet lacked 0 and 0)" in again, again
        status = json.loads(edgeplan("fleet", "status", *postgres.admin_args(), "--json").stdout)["robots"][0]
        assert status["runs"] == 0 and status["runsLag"] == 0 and status["outcomesLag"] == 0, status
        # New reports still go up.
        robot.start()
        robot.report(2, seed=4)
        assert "sent 2 runs and 2 outcomes" in robot.sync().stdout
        bad = edgeplan("fleet", "prune", "--older-than", "a while", *postgres.admin_args(), check=False)
        assert bad.returncode == 64 and "--older-than" in bad.stderr, bad.stderr
    finally:
        robot.stop()


def corrupt_store(robot):
    """Stops the robot, makes its store unreadable, and starts it: the daemon moves the store aside and makes a new
    one, whose rows count from 1 again and which has a new store id."""
    robot.stop()
    path = os.path.join(robot.state, "observations.sqlite")
    for suffix in ["-wal", "-shm"]:
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with open(path, "wb") as handle:
        handle.write(b"not a database" * 100)
    robot.start()


def test_a_store_made_anew_after_corruption_still_uploads_every_row(postgres, robots):
    """The daemon moves a corrupt store aside and starts a new one, whose rows count from 1 again, below the
    fleet's newest: the sync notices, sends the new store's rows all the same, and none twice."""
    robot = robots("r1")
    robot.report(5)
    assert "sent 5 runs and 5 outcomes" in robot.sync().stdout
    corrupt_store(robot)
    robot.report(3, seed=9)
    assert robot.local_counts()[0] == (3, 3), "the new store counts from 1"
    sent = robot.sync().stdout
    print(sent.strip())
    assert "sent 3 runs and 3 outcomes (the fleet lacked 3 and 3)" in sent, sent
    assert int(postgres.psql("SELECT count(*) FROM runs WHERE robot = 'r1'").stdout) == 8
    assert int(postgres.psql("SELECT count(*) FROM outcomes WHERE robot = 'r1'").stdout) == 8
    robot.report(2, seed=10)
    again = robot.sync().stdout
    assert "sent 2 runs and 2 outcomes (the fleet lacked 2 and 2)" in again, again
    assert "sent 0 runs and 0 outcomes (the fleet lacked 0 and 0)" in robot.sync().stdout
    assert int(postgres.psql("SELECT count(*) FROM runs WHERE robot = 'r1'").stdout) == 10
    status = json.loads(edgeplan("fleet", "status", *postgres.admin_args(), "--json").stdout)["robots"][0]
    assert status["runsLag"] == 0 and status["outcomesLag"] == 0, status


def beliefs(robot, task="grasp-plan", model="Qwen2.5-7B-it"):
    """What a robot believes of a task: its learned group (accuracy, interval, outcomes and the fleet's share of
    them), what it holds back, the fleet version it learned, and its plan."""
    _, status = robot.learned(task, model)
    group = next((g for g in status["learning"]["groups"] if g["task"] == task and g["model"] == model), None)
    plan = robot.plan(task, 60000.0)
    return {
        "accuracy": None if group is None else round(group["singleSampleAccuracy"], 4),
        "interval": None if group is None else (round(group["singleSampleLow"], 4), round(group["singleSampleHigh"], 4)),
        "outcomes": None if group is None else group["observations"],
        "fleetOutcomes": None if group is None else group["fleetObservations"],
        "heldBack": sorted(entry for entry in status["learning"]["heldBack"] if entry.startswith(task)),
        "fleetVersion": (status.get("fleet") or {}).get("version"),
        "plan": (plan["model"], plan["mode"], plan["parallel"], round(plan["predicted"]["accuracy"], 4)),
    }


def restart(robot):
    """The daemon learns the fleet version at start (and within 30 s of a new one while it runs)."""
    robot.stop()
    robot.start()


def pulled(robot):
    return json.load(open(os.path.join(robot.state, "fleet-version.json")))


def test_a_robot_never_hears_its_own_reports_back_from_the_fleet(postgres, robots):
    """A robot sends 200 reports, and the version the fleet pools from them alone comes back to it: it learns
    nothing from it. Its outcomes, interval, held-back estimates and plan are what they were before the pull."""
    robot = robots("r1", extra_policy=GRASP, robot_id="arm-1")
    robot.report(200, accuracy=0.95, seed=21, task="grasp-plan", deadline_ms=60000.0)
    before = beliefs(robot)
    assert before["outcomes"] == 200 and before["fleetOutcomes"] == 0 and before["heldBack"], before
    robot.sync()
    version = aggregate(postgres)
    pooled = [g for g in version["body"]["accuracy"] if g["task"] == "grasp-plan"]
    assert sum(g["trials"] for g in pooled) == 200, "the fleet's version holds the robot's 200 reports"
    # Every aggregate makes a version, and says when nothing changed.
    again = edgeplan("fleet", "aggregate", *postgres.admin_args()).stdout
    assert again.splitlines() == ["fleet version 2 from 200 runs", "  nothing changed since version 1"], again
    sent = robot.sync().stdout
    assert "without this robot's own rows (0 groups pooled from the other robots only, 2 groups only this robot made left out)" in sent, sent
    file = pulled(robot)
    assert file["ownRows"] == {"leftOut": True, "pooledWithout": 0, "dropped": 2}, file["ownRows"]
    assert [g for g in file["body"]["accuracy"] + file["body"]["lengths"] if g["task"] == "grasp-plan"] == []
    restart(robot)
    after = beliefs(robot)
    print(f"before the pull: {before}")
    print(f"after pulling version {file['version']}, which holds only its own rows: {after}")
    assert after["fleetVersion"] == file["version"]
    assert {k: v for k, v in after.items() if k != "fleetVersion"} == {k: v for k, v in before.items() if k != "fleetVersion"}
    status = robot.learned("grasp-plan", "Qwen2.5-7B-it")[1]
    assert status["fleet"]["priorOutcomes"] == 0 and status["fleet"]["ownRows"]["dropped"] == 2
    text = edgeplan("status", "--socket", robot.socket).stdout
    print(text)
    assert "from 200 own reports" in text and "fleet: version" in text and "2 groups only it made dropped" in text, text
    assert "    sync: last success" in text, text


def test_held_back_estimates_wait_for_a_different_robot_even_after_the_store_is_made_anew(postgres, robots):
    """A lone robot's optimism stays held back whatever the fleet echoes of it: after its own version comes back,
    and after its store is made anew (a new store id, the same robot). Another robot's reports confirm it; the
    robot then learns exactly that robot's part of the version. (The robots name their ids: on one machine they
    would report one machine id, and be one robot to each other.)"""
    robot = robots("r1", extra_policy=GRASP, robot_id="arm-1")
    robot.report(150, accuracy=0.95, seed=31, task="grasp-plan", deadline_ms=60000.0)
    held = beliefs(robot)["heldBack"]
    assert held
    robot.sync()
    aggregate(postgres)
    robot.sync()
    restart(robot)
    assert beliefs(robot)["heldBack"] == held
    # The store is found corrupt and made anew: its rows count from 1 again, and it has a new store id.
    corrupt_store(robot)
    robot.report(60, accuracy=0.95, seed=32, task="grasp-plan", deadline_ms=60000.0)
    assert "sent 60 runs and 60 outcomes" in robot.sync().stdout
    version = aggregate(postgres)
    assert sum(g["trials"] for g in version["body"]["accuracy"] if g["task"] == "grasp-plan") == 210
    robot.sync()
    restart(robot)
    anew = beliefs(robot)
    print(f"store made anew, its 210 rows in the fleet: {anew}")
    assert anew["outcomes"] == 60 and anew["fleetOutcomes"] == 0 and anew["heldBack"] == held, anew
    # A different robot confirms it: the robot learns that robot's 100 outcomes, and nothing of its own 210.
    other = robots("r2", extra_policy=GRASP, robot_id="arm-2")
    other.report(100, accuracy=0.9, seed=33, task="grasp-plan", deadline_ms=60000.0)
    other.sync()
    aggregate(postgres)
    sent = robot.sync().stdout
    assert "pooled from the other robots only" in sent, sent
    file = pulled(robot)
    groups = [g for g in file["body"]["accuracy"] if g["task"] == "grasp-plan"]
    others = {}
    for row in postgres.psql("SELECT budget_tokens, parallel, count(*) FILTER (WHERE correct), count(*) FROM outcomes "
                             "WHERE robot = 'r2' GROUP BY 1, 2").stdout.split():
        budget, parallel, right, trials = row.split("|")
        others[(int(budget) if budget else None, int(parallel))] = (int(right), int(trials))
    assert {(g["budgetTokens"], g["parallel"]): (round(g["accuracy"] * g["trials"]), g["trials"]) for g in groups} == others
    assert all(g["robots"] == 1 for g in groups)
    restart(robot)
    confirmed = beliefs(robot)
    print(f"after another robot's 100 reports: {confirmed}")
    assert confirmed["fleetOutcomes"] == sum(t for _, t in others.values()) and confirmed["outcomes"] == 60 + 100
    assert confirmed["heldBack"] == [], confirmed


def test_a_fleet_version_journals_a_changed_decision_only_when_the_configuration_changed(postgres, robots, tmp_path):
    """Another robot's reports come in a version the running daemon picks up: grasp-plan has one configuration,
    whose accuracy the version moves by 30 points (no decision changed, nothing journaled); mmlu-redux's default
    decision is never right on the other robot, so the robot plans another configuration (journaled)."""
    log = str(tmp_path / "r1.log")
    robot = robots("r1", extra_policy=GRASP, start=False, robot_id="arm-1")
    robot.start(log=log)
    grasp_before = robot.plan("grasp-plan", 60000.0)
    mmlu_before = robot.plan("mmlu-redux", 60000.0)
    other = robots("r2", extra_policy=GRASP, robot_id="arm-2")
    other.report(200, accuracy=0.3, seed=41, task="grasp-plan", deadline_ms=60000.0)
    # On the other robot, mmlu-redux's default configuration is never right, and the others as the table says.
    default = [mmlu_before[k] for k in ["model", "quantization", "mode", "parallel"]]
    rng = random.Random(42)
    with varlink.Client(address="unix:" + other.socket).open("io.edgeplan.Planner") as planner:
        for _ in range(120):
            plan = planner.Plan(task="mmlu-redux", deadlineMs=60000.0, inputTokens=256)["plan"]
            wrong = [plan[k] for k in ["model", "quantization", "mode", "parallel"]] == default
            planner.Report(requestId=plan["requestId"], correct=not wrong and rng.random() < plan["predicted"]["accuracy"],
                           latencyMs=predicted_ms(plan["model"], plan["quantization"], plan["parallel"], 100),
                           sampleOutputTokens=[100] * plan["parallel"])
    other.sync()
    aggregate(postgres)
    robot.sync()
    # The running daemon looks for a new version every 30 s.
    for _ in range(80):
        if "fleet version changed a decision" in open(log).read():
            break
        time.sleep(0.5)
    grasp_after = robot.plan("grasp-plan", 60000.0)
    mmlu_after = robot.plan("mmlu-redux", 60000.0)
    lines = [line for line in open(log).read().splitlines() if "fleet version changed a decision" in line]
    print(f"grasp-plan {grasp_before['predicted']['accuracy']:.3f} -> {grasp_after['predicted']['accuracy']:.3f}; mmlu-redux "
          f"{mmlu_before['model']} x{mmlu_before['parallel']} -> {mmlu_after['model']} x{mmlu_after['parallel']}")
    print("\n".join(lines))
    assert abs(grasp_after["predicted"]["accuracy"] - grasp_before["predicted"]["accuracy"]) > 0.1
    assert (grasp_after["model"], grasp_after["mode"], grasp_after["parallel"]) == \
        (grasp_before["model"], grasp_before["mode"], grasp_before["parallel"])
    assert not any("EDGEPLAN_TASK=grasp-plan" in line for line in lines), lines
    changed = [(mmlu_before[k], mmlu_after[k]) for k in ["model", "quantization", "mode", "parallel"]
               if mmlu_before[k] != mmlu_after[k]]
    assert changed, "the other robot's 0 % changed mmlu-redux's decision"
    assert any("EDGEPLAN_TASK=mmlu-redux" in line for line in lines), lines


def test_fleet_init_says_what_the_owner_needs_and_counts_its_partitions(postgres):
    """The owner of an empty database, made as docs/fleet.md shows but without CREATEROLE: init names the
    privilege and how to grant it, in words; with it, init says how many partitions it made, of which months."""
    docs = open(os.path.join(ROOT, "docs", "fleet.md")).read()
    setup = next(part.split("```")[0] for part in docs.split("```sql\n")[1:] if "CREATEROLE" in part)
    postgres.psql("CREATE ROLE plain_owner LOGIN PASSWORD 'plain-secret'", database="postgres")
    postgres.psql("CREATE DATABASE plain_fleet OWNER plain_owner", database="postgres")
    password = os.path.join(postgres.directory, "plain-password")
    with open(password, "w") as handle:
        handle.write("plain-secret\n")
    args = ["--host", postgres.socket_dir, "--port", str(postgres.port), "--user", "plain_owner", "--password-file",
            password, "--database", "plain_fleet"]
    refused = edgeplan("fleet", "init", *args, check=False)
    print(refused.stderr.strip())
    assert refused.returncode == 74
    assert "role plain_owner may not create roles" in refused.stderr and "ALTER ROLE plain_owner CREATEROLE" in refused.stderr
    assert "PostgresTransactionError" not in refused.stderr and "file:" not in refused.stderr
    # The docs' own statements, for this owner and database, make a fleet init accepts.
    sql = setup.replace("fleet_owner", "doc_owner").replace("edgeplan_fleet", "doc_fleet").replace("'...'", "'doc-secret'")
    for statement in [part.strip() for part in sql.split(";") if part.strip()]:
        postgres.psql(statement, database="postgres")
    with open(password, "w") as handle:
        handle.write("doc-secret\n")
    args[args.index("plain_owner")] = "doc_owner"
    args[args.index("plain_fleet")] = "doc_fleet"
    made = edgeplan("fleet", "init", *args).stdout
    print(made.strip())
    tables = postgres.psql("SELECT count(*) FROM pg_inherits WHERE inhparent IN ('runs'::regclass, 'outcomes'::regclass)",
                           database="doc_fleet").stdout.strip()
    # Five months (one back, this one, three ahead) for each of two tables, and the two default partitions.
    assert int(tables) == 12
    assert "10 monthly partitions made: 5 months" in made and "for runs and for outcomes" in made, made
    assert "fleet schema up to date" in edgeplan("fleet", "init", *args).stdout


def test_a_sync_says_where_it_looked_for_the_password_and_a_down_server_is_named(postgres, robots, tmp_path):
    """No password_file and no $CREDENTIALS_DIRECTORY (the docs' policy snippet, run by hand): the sync says it
    looked for the fleet-password credential and where. A relative password_file is read beside the policy, from
    any working directory. A server that is down is named by its socket, or by host and port."""
    robot = robots("r1", start=False)
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"kind: policy\nfleet:\n  host: {postgres.socket_dir}\n  port: {postgres.port}\n  user: r1\n")
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    result = subprocess.run([EDGEPLAN, "fleet", "sync", "--once", "--policy", str(bare), "--state-dir", robot.state],
                            capture_output=True, text=True, env=env, timeout=60)
    print(result.stderr.strip())
    assert result.returncode == 74
    assert "asks role r1 for a password" in result.stderr and "fleet-password" in result.stderr
    assert "$CREDENTIALS_DIRECTORY is not set" in result.stderr and "password_file" in result.stderr
    assert "authMechanismRequiresPassword" not in result.stderr
    # With the credential directory set but the file absent, the path is named.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    result = subprocess.run([EDGEPLAN, "fleet", "sync", "--once", "--policy", str(bare), "--state-dir", robot.state],
                            capture_output=True, text=True, env=dict(env, CREDENTIALS_DIRECTORY=str(credentials)), timeout=60)
    assert result.returncode != 0 and str(credentials / "fleet-password") in result.stderr, result.stderr
    # A relative password_file: beside the policy, whatever the working directory.
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "r1.pw").write_text("r1-secret\n")
    relative = tmp_path / "policies" / "policy.yaml"
    relative.write_text(f"kind: policy\nfleet:\n  host: {postgres.socket_dir}\n  port: {postgres.port}\n  user: r1\n"
                        "  password_file: r1.pw\n")
    result = subprocess.run([EDGEPLAN, "fleet", "sync", "--once", "--policy", str(relative), "--state-dir", robot.state],
                            capture_output=True, text=True, env=env, timeout=60, cwd="/")
    assert result.returncode == 0 and "sent 0 runs" in result.stdout, result.stderr
    # The server down: its socket is gone.
    postgres.stop("immediate")
    result = subprocess.run([EDGEPLAN, "fleet", "sync", "--once", "--policy", robot.policy, "--state-dir", robot.state],
                            capture_output=True, text=True, timeout=60)
    print(result.stderr.strip())
    assert result.returncode == 74 and "no PostgreSQL server is running there" in result.stderr
    assert f"{postgres.socket_dir}/.s.PGSQL.{postgres.port}" in result.stderr and "errno" not in result.stderr
    # By TCP: nothing listens on the port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tcp = tmp_path / "tcp.yaml"
    tcp.write_text(f"kind: policy\nfleet:\n  host: 127.0.0.1\n  port: {port}\n  user: r1\n  password_file: {robot.password_file}\n")
    result = subprocess.run([EDGEPLAN, "fleet", "sync", "--once", "--policy", str(tcp), "--state-dir", robot.state],
                            capture_output=True, text=True, timeout=60)
    print(result.stderr.strip())
    assert result.returncode == 74 and f"nothing listens on 127.0.0.1 port {port} (connection refused)" in result.stderr
