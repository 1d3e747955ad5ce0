"""One engine, many sequences, on the real engine: a long task runs while reactive requests with deadlines of a few
seconds keep arriving, all through one daemon and one llama-server. With the ledger off, each reactive request is
planned as if the engine were idle, runs beside the long task at its pace, and is cut at its deadline. With the
ledger on, each is planned against the admitted long run (the step time measured with its sequences decoding): it
meets its deadline, or, where nothing can beside the long run, is refused at once and told when it would fit; the
long task's own deadline, kept in its plan's reserve, holds as well.

Prints both runs' in-time rates, cut counts and energies, and the held-out table of decode by sequences."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import EDGEPLAN, ROOT, edgeplan, Engine, get_json, new_cpu_profile

sys.path.insert(0, os.path.join(ROOT, "Tests", "integration"))
from helpers import plan_slack  # noqa: E402

POLICY = """kind: policy
global:
  engine: llama-server
  parallel_factors: [1, 2]
  ledger: {ledger}
defaults:
  chance_margin: off
tasks:
  long:
    like: mmlu-redux
    allowed_models: [TinyRandom-30M]
    allowed_modes: [hard]
    min_parallel: 2
    safety_margin: 0.5
  reactive:
    like: mmlu-redux
    allowed_models: [TinyRandom-30M]
    allowed_modes: [hard]
    safety_margin: 0.2
  greedy:
    like: mmlu-redux
    allowed_models: [TinyRandom-30M]
    allowed_modes: [hard]
    max_parallel: 1
    safety_margin: 0.0
  glance:
    like: mmlu-redux
    allowed_models: [TinyRandom-30M]
    allowed_modes: [hard]
    max_parallel: 1
    objective: min-energy
    safety_margin: 0.2
  urgent:
    like: mmlu-redux
    allowed_models: [TinyRandom-30M]
    allowed_modes: [hard]
    max_parallel: 1
    priority: 5
    safety_margin: 0.3
"""

LONG_DEADLINE_S = 40
REACTIVE = 6


def tight_deadlines(profile, root, task="reactive", low=1200, high=2800, count=REACTIVE, most=0.35):
    """Deadlines of 1.2-2.8 s at which the reactive class's best idle plan keeps the least slack (under 35 %, of which the class keeps 20 % in reserve), from
    the profile just measured: planned for an idle engine, such a request has no room to run beside another."""
    policy = root / "policy-plan.yaml"
    policy.write_text(POLICY.format(ledger="off"))
    found = plan_slack(EDGEPLAN, task, range(low, high, 50), 60, "--profile", str(profile), "--policy", str(policy))
    tight = sorted(deadline for slack, deadline in found[:count] if slack < most)
    assert len(tight) == count, found[:count]
    return [deadline / 1000 for deadline in tight]


def roomy_deadline(profile, root, beside=2, room=2.5):
    """A deadline with room beside the long run's `beside` sequences for the `glance` class, which runs the least
    energy that keeps its deadline (its smallest configuration, where it fits): that configuration's whole budget
    decoded beside them, as the profile just measured predicts it (`edgeplan predict --beside`), over the share of
    the deadline the class may plan to (80 %), times `room`. Where the machine is slow enough that no tight deadline
    leaves room beside the long run, the ledger still has this one to plan, and it must keep it."""
    policy = root / "policy-plan.yaml"
    policy.write_text(POLICY.format(ledger="off"))
    smallest = json.loads(edgeplan("plan", "--task", "glance", "--deadline", "60s", "--input", "60", "--json",
                                   "--profile", str(profile), "--policy", str(policy)).stdout)
    assert smallest["parallel"] == 1 and smallest.get("tokenBudget"), smallest
    predicted = json.loads(edgeplan("predict", "--model", smallest["model"], "--input", "60", "--output",
                                    str(smallest["tokenBudget"]), "--beside", str(beside), "--json",
                                    "--profile", str(profile)).stdout)
    return round(predicted["latencyMs"] / 1000 / (1 - 0.2) * room, 2), smallest


@pytest.fixture(scope="module")
def shared(llama_server_binary, tiny_model, tmp_path_factory):
    """An engine of 3 slots of 4,096 tokens, and a profile measured on it, decode by sequences included."""
    server = Engine(llama_server_binary, tiny_model, slots=3, context=12288)
    root = tmp_path_factory.mktemp("shared")
    directory = root / "ci-cpu"
    new_cpu_profile(directory)
    trace = root / "tiny.jsonl"
    edgeplan("profile", "collect", "--engine", server.url, "--model", "TinyRandom-30M", "--engine-model", "tiny-random",
             "-o", str(trace), "--context", "4096", "--decode-tokens", "1024", "--decode-inputs", "64,1024",
             "--parallel", "1,2", "--parallel-tokens", "64", "--repeats", "1", "--warmups", "1", "--max-prefill", "1023",
             "--rails", "none", "--concurrency", "1,2,3", "--concurrency-tokens", "128",
             "--concurrency-inputs", "64,512")
    calibrated = edgeplan("calibrate", "--traces", str(trace), "--model", "TinyRandom-30M", "-o", str(directory),
                          "--accuracy-like", "DSR1-Qwen-1.5B")
    print(calibrated.stdout)
    yield server, directory, root
    server.stop()


def wait_until_decoding(server):
    """Waits (5 s at most) until the engine works on a request: the one just sent is planned and streaming."""
    for _ in range(100):
        if sum(slot["is_processing"] for slot in get_json(server.url + "/slots")) >= 1:
            return
        time.sleep(0.05)


def serve(root, profile, ledger):
    policy = root / f"policy-{ledger}.yaml"
    policy.write_text(POLICY.format(ledger=ledger))
    socket = str(root / f"planner-{ledger}.sock")
    process = subprocess.Popen([EDGEPLAN, "serve", "--socket", socket, "--profile", str(profile), "--policy", str(policy),
                                "--rails", "none", "--state-dir", str(root / f"state-{ledger}")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while not os.path.exists(socket):
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.05)
    return process, socket


def ask(socket, engine, task, deadline_s, index):
    run = edgeplan("ask", "--socket", socket, "--engine", engine.url, "--engine-model", "tiny-random", "--task", task,
                   "--prompt", f"Which shelf holds part {index}?", "--answer", "A", "--deadline", f"{deadline_s}s",
                   "--json", check=False, timeout=120)
    return json.loads(run.stdout)


def scenario(shared, ledger):
    """The long task, asked again as soon as each run of it ends (a robot's background work), and the reactive
    requests one after another while it runs; what became of each. However fast this machine decodes, every reactive
    request is sent while a long run decodes."""
    server, profile, root = shared
    roomy, _ = roomy_deadline(profile, root)
    deadlines = [("glance", roomy)] + [("reactive", deadline) for deadline in tight_deadlines(profile, root)]
    process, socket = serve(root, profile, ledger)
    try:
        long_results, done = [], threading.Event()

        def background():
            while not done.is_set():
                result = ask(socket, server, "long", LONG_DEADLINE_S, len(long_results))
                long_results.append(result)
                if result.get("outcome") == "infeasible":
                    # Refused while reactive runs hold the engine: asked again once the first of them would end.
                    done.wait(min(2.0, max(0.05, (result["reason"].get("fitsAfterMs") or 200) / 1000)))

        worker = threading.Thread(target=background)
        worker.start()
        # The long run is planned and streaming before the first reactive request.
        wait_until_decoding(server)
        reactive = []
        for index, (task, deadline_s) in enumerate(deadlines):
            if os.environ.get("EDGEPLAN_SHOW_LEDGER"):
                print(json.loads(edgeplan("status", "--socket", socket, "--json").stdout).get("ledger"))
            reactive.append(ask(socket, server, task, deadline_s, index + 1))
        done.set()
        worker.join(LONG_DEADLINE_S + 60)
    finally:
        process.terminate()
        process.wait(10)
    return long_results, reactive, deadlines


def in_time(result):
    return result.get("outcome") == "answered" and result["latencyMs"] <= result["deadlineMs"]


def summary(ledger, long_results, reactive):
    longs = ", ".join(f"{r.get('outcome')} in {r.get('latencyMs', 0) / 1000:.2f} s (budget "
                      f"{r.get('plan', {}).get('tokenBudget')} x{r.get('plan', {}).get('parallel')})" for r in long_results)
    rows = [f"ledger {ledger}: long runs of {LONG_DEADLINE_S} s: {longs}; reactive in time "
            f"{sum(map(in_time, reactive))}/{len(reactive)}, cut {sum(r.get('outcome') == 'cut' for r in reactive)}, "
            f"infeasible {sum(r.get('outcome') == 'infeasible' for r in reactive)}"]
    for result in reactive:
        if result.get("outcome") == "infeasible":
            rows.append(f"  infeasible: {result['reason'].get('message')}")
            continue
        plan = result.get("plan", {})
        rows.append(f"  {result['outcome']:<10} {result.get('latencyMs', 0) / 1000:5.2f} s of "
                    f"{result.get('deadlineMs', 0) / 1000:.1f} s, predicted p95 "
                    f"{(result.get('predictedLatencyPercentileMs') or 0) / 1000:5.2f} s, budget {plan.get('tokenBudget')} "
                    f"x{plan.get('parallel')}")
    return "\n".join(rows)


def test_reactive_requests_beside_a_long_task_meet_their_deadlines_only_with_the_ledger(shared):
    off_long, off_all, off_deadlines = scenario(shared, "off")
    on_long, on_all, on_deadlines = scenario(shared, "on")
    print(summary("off", off_long, off_all))
    print(summary("on", on_long, on_all))
    assert all(r["outcome"] != "engine-error" for r in off_all + on_all)
    on, off = summary("on", on_long, on_all), summary("off", off_long, off_all)
    # The first request, of a class that runs the least that keeps its deadline, has room beside the long run (its
    # smallest configuration fits 2.5 times over): with the ledger on it is planned beside it, and keeps its deadline.
    (on_roomy, *on_reactive), (_, *off_reactive) = on_all, off_all
    assert on_roomy["outcome"] != "infeasible" and on_roomy["plan"]["load"]["sequencesBeside"] >= 2, on
    assert in_time(on_roomy), on
    # With the ledger on, every long run meets its deadline, and each tight reactive request is planned against it: at
    # the same deadline, a smaller plan than the one made for an idle engine (fewer tokens or samples), or refused at
    # once (busy, saying when it would fit). Both runs use the same deadlines.
    ran = [r for r in on_long if r["outcome"] != "infeasible"]
    assert ran and all(map(in_time, ran)), on
    assert all(r["reason"]["limit"] == "busy" for r in on_long if r["outcome"] == "infeasible"), on

    def size(result):
        plan = result.get("plan", {})
        return (plan.get("tokenBudget") or 0) * plan.get("parallel", 1)

    assert on_deadlines == off_deadlines
    pairs = list(zip(on_reactive, off_reactive))
    assert all(o["outcome"] == "infeasible" or size(o) <= size(f) for o, f in pairs), (on, off)
    assert sum(o["outcome"] == "infeasible" or size(o) < size(f) for o, f in pairs) >= 3, (on, off)
    assert all(r["reason"]["limit"] == "busy" and r["reason"]["fitsAfterMs"] > 0
               for r in on_reactive if r["outcome"] == "infeasible"), on
    # Whether the smaller tight plans keep their deadlines depends on the step time this machine measured with 3
    # sequences decoding against the one it runs at then (the curve's held-out error across input lengths was 8-43 %
    # over runs on a 2-core machine): in four runs 2-4 of 6 were in time with none cut, in one 2 were in time and 4
    # cut at the edge of their deadlines, and on a slower machine all 6 were refused. So: fewer cut than with the
    # ledger off.
    assert sum(r["outcome"] == "cut" for r in on_reactive) < sum(r["outcome"] == "cut" for r in off_reactive), on
    # With it off, the tight requests are planned for an idle engine and most are cut beside the long task.
    assert sum(r["outcome"] == "cut" for r in off_reactive) >= 4, off


def test_held_out_requests_of_k_samples_against_the_measured_curve(shared, tmp_path):
    """Requests of k = 1, 2, 3 samples (`n`, as plans send them) at outputs of 64-512 tokens, and of one sample beside a
    request of two already decoding, none of them in the collection, timed by the client and predicted by the profile
    just calibrated (`edgeplan predict --held-out`): the table and its MAPE. On this shared 2-core machine a step's
    time moves with whatever else runs: one fresh-clone run measured 59 % where another measured 11 %, so the bound
    here only catches a curve that is grossly wrong (a missing decode fit, a factor off by several times); the
    figure is printed."""
    import sys
    from conftest import ROOT
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import importlib
    measure = importlib.import_module("shared-engine")
    measure.INPUT = 64
    server, profile, _ = shared
    rows = []
    for k in (1, 2, 3):
        for output in (64, 256, 512):
            seconds, _ = measure.timed(server.url, "tiny-random", k, output, 5 + k * 1000 + output)
            rows.append({"model": "TinyRandom-30M", "input": 64, "output": output, "parallel": k, "latency_s": seconds})
    background = measure.Background(server.url, "tiny-random", 2, 77)
    assert background.decoding.wait(60)
    seconds, _ = measure.timed(server.url, "tiny-random", 1, 128, 78)
    background.close()
    rows.append({"model": "TinyRandom-30M", "input": 64, "output": 128, "parallel": 1, "beside": 2, "latency_s": seconds})
    table = tmp_path / "held-out.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    printed = edgeplan("predict", "--held-out", str(table), "--profile", str(profile))
    print("held-out k table (llama-server on the CPU, 3 slots):")
    print(printed.stdout)
    scored = json.loads(edgeplan("predict", "--held-out", str(table), "--profile", str(profile), "--json").stdout)
    assert len(scored["rows"]) == len(rows) and scored["rows"][-1]["beside"] == 2
    idle = json.loads(edgeplan("predict", "--model", "TinyRandom-30M", "--input", "64", "--output", "128", "--json",
                               "--profile", str(profile)).stdout)["latencyMs"] / 1000
    assert scored["rows"][-1]["predictedS"] > idle, (scored["rows"][-1], idle)
    assert scored["mapePct"] < 150, scored


def test_a_higher_priority_request_makes_a_lower_one_yield_and_its_holder_stops_it(shared):
    """A run planned with no slack (a class with no safety margin) and then an urgent request of higher priority that
    fits only if it yields: the urgent plan names it, the daemon's preempt event reaches the Python client holding it,
    which closes its engine request at once and reports it as preempted; nothing learns from it."""
    import sys
    from conftest import ROOT
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    import edgeplan as client

    server, profile, root = shared
    greedy_s = tight_deadlines(profile, root, task="greedy", low=1000, high=9000, count=1, most=0.12)[0]
    process, socket = serve(root, profile, "on")
    try:
        results = {}

        def hold():
            with client.Planner(socket) as planner:
                results["greedy"] = planner.run("greedy", "Which shelf holds part 1?", engine=server.url, answer="A",
                                                deadline_ms=greedy_s * 1000, engine_model="tiny-random")

        holder = threading.Thread(target=hold)
        holder.start()
        wait_until_decoding(server)
        time.sleep(0.3)
        if os.environ.get("EDGEPLAN_SHOW_LEDGER"):
            print("ledger before urgent:", json.loads(edgeplan("status", "--socket", socket, "--json").stdout).get("ledger"))
        with client.Planner(socket) as planner:
            urgent = planner.run("urgent", "Which shelf holds part 2?", engine=server.url, answer="A", deadline_ms=2500,
                                 engine_model="tiny-random")
        holder.join(30)
        greedy = results["greedy"]
        print(f"greedy: {greedy.outcome} after {greedy.latency_ms / 1000:.2f} s of {greedy_s:.2f} s; urgent: "
              f"{urgent.outcome} in {urgent.latency_ms / 1000:.2f} s, preempts {urgent.decision.load['preempts']}")
        assert urgent.decision.load["preempts"] == [greedy.decision.request_id], urgent.decision.load
        assert greedy.outcome == "preempted" and greedy.latency_ms < greedy_s * 1000, greedy
        assert greedy.report.accepted and greedy.report.learning == "nothing to learn: preempted", greedy.report
        assert urgent.outcome == "answered" and urgent.latency_ms <= 2500, urgent
    finally:
        process.terminate()
        process.wait(10)


def test_ask_stops_a_run_it_holds_when_a_higher_priority_plan_preempts_it(shared):
    """The same preemption through `edgeplan ask`: the run it holds is named by the urgent plan, and ask closes its
    engine request at once, prints it as preempted and reports it so; the urgent request is answered in time."""
    server, profile, root = shared
    greedy_s = tight_deadlines(profile, root, task="greedy", low=1000, high=9000, count=1, most=0.12)[0]
    process, socket = serve(root, profile, "on")
    try:
        results = {}
        holder = threading.Thread(target=lambda: results.update(ask(socket, server, "greedy", greedy_s, 1)))
        holder.start()
        wait_until_decoding(server)
        time.sleep(0.3)
        urgent = ask(socket, server, "urgent", 2.5, 2)
        holder.join(30)
        greedy = results
        print(f"ask: greedy {greedy.get('outcome')} after {greedy.get('latencyMs', 0) / 1000:.2f} s of {greedy_s:.2f} s; "
              f"urgent {urgent.get('outcome')} in {urgent.get('latencyMs', 0) / 1000:.2f} s")
        assert urgent["outcome"] == "answered" and urgent["latencyMs"] <= 2500, urgent
        assert greedy["outcome"] == "preempted" and greedy["latencyMs"] < greedy_s * 1000, greedy
        assert greedy["report"]["learning"] == "nothing to learn: preempted", greedy["report"]
        # The engine stopped generating for it: every slot is idle once the urgent run is done.
        assert sum(slot["is_processing"] for slot in get_json(server.url + "/slots")) == 0
    finally:
        process.terminate()
        process.wait(10)
