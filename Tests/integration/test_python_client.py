"""The Python client package against a real daemon: typed results, typed errors, the example scheduler loop."""
import os
import re
import threading
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python", "examples"))

import edgeplan  # noqa: E402
import robot_scheduler  # noqa: E402

from helpers import wait_until_answers


@pytest.fixture
def socket_path():
    directory = tempfile.mkdtemp(prefix="ep-client-", dir="/tmp")
    path = os.path.join(directory, "planner.sock")
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--rails", "none", "--state-dir", os.path.join(directory, "state")],
                               stderr=subprocess.DEVNULL)
    wait_until_answers(path)
    yield path
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    shutil.rmtree(directory, ignore_errors=True)


def test_typed_results_and_errors(socket_path):
    with edgeplan.Planner(socket_path) as planner:
        decision = planner.plan("mmlu-redux", deadline_ms=10_000)
        assert isinstance(decision, edgeplan.Decision) and decision.request_id
        assert decision.predicted.accuracy_low <= decision.predicted.accuracy <= decision.predicted.accuracy_high
        assert decision.predicted.latency_percentile_ms <= 10_000
        result = planner.report(decision.request_id, latency_ms=decision.predicted.latency_ms, correct=True)
        assert isinstance(result, edgeplan.ReportResult) and result.accepted and result.learning == "learned"
        points = planner.frontier("mmlu-redux", 256)
        assert points and all(isinstance(point, edgeplan.FrontPoint) for point in points)
        with pytest.raises(edgeplan.Infeasible) as infeasible:
            planner.plan("mmlu-redux", deadline_ms=1)
        assert infeasible.value.limit == "deadline" and infeasible.value.miss_by_ms > 0 and infeasible.value.miss_by_j is None
        with pytest.raises(edgeplan.UnknownTask) as unknown:
            planner.plan("juggling", deadline_ms=1000)
        assert "mmlu-redux" in unknown.value.known
        with pytest.raises(edgeplan.InvalidParameter) as invalid:
            planner.plan("mmlu-redux", deadline_ms=-5)
        assert isinstance(invalid.value, edgeplan.EdgePlanError)
        assert planner.status()["reports"] >= 1


def test_the_example_scheduler_loop_runs(socket_path):
    done, infeasible = robot_scheduler.main(socket_path, tasks=15, time_scale=0.0)
    assert done >= 5 and done + infeasible == 15
    with edgeplan.Planner(socket_path) as planner:
        status = planner.status()
        assert status["reports"] == done
        assert status["learning"]["rememberedPlans"] >= done
        # The example's engine stops at max_tokens in every mode, as a real one does: no length it reports is refused.
        assert all(count == 0 for count in status["learning"]["refused"].values()), status["learning"]["refused"]


def test_a_report_past_the_cap_is_refused_in_its_reply(socket_path):
    """A capped plan's samples cannot run past its budget: the reply says the outcome was refused and why (it had
    said it was learned), the client can see that it was, and status text and JSON count it alike."""
    with edgeplan.Planner(socket_path) as planner:
        decision = planner.plan("mmlu-redux", deadline_ms=8_000, input_tokens=256)
        assert decision.capped and decision.token_budget, decision
        # At the p95 latency, which the lengths fit: only the lengths are impossible.
        result = planner.report(decision.request_id, latency_ms=decision.predicted.latency_percentile_ms, correct=True,
                                sample_output_tokens=[decision.token_budget + 50] * decision.parallel)
        assert result.accepted and result.refused and "impossible-length" in result.learning, result
        counted = planner.status()["learning"]["refused"]["impossible-length"]
    assert counted == 1
    text = subprocess.run([BINARY, "status", "--socket", socket_path], capture_output=True, text=True, check=True).stdout
    assert "outcomes refused: impossible-length 1" in text, text


def interface_fields():
    """Field names of the interface's types, and of Report's reply, from its description."""
    text = open(os.path.join(ROOT, "docs", "io.edgeplan.Planner.varlink")).read()
    found = {name: re.findall(r"(\w+):", body) for name, body in re.findall(r"^type (\w+) \((.*?)\n\)", text, re.M | re.S)}
    reply = re.search(r"^method Report\(.*?\) -> \((.*?)\)\n", text, re.M | re.S).group(1)
    found["ReportResult"] = re.findall(r"(\w+):", reply)
    return found


def test_the_client_types_carry_every_field_of_the_interface():
    declared = interface_fields()
    for cls, name in [(edgeplan.Prediction, "Prediction"), (edgeplan.Decision, "Decision"), (edgeplan.FrontPoint, "FrontPoint"),
                      (edgeplan.ReportResult, "ReportResult")]:
        carried = set(edgeplan.types.wire_names(cls).values())
        assert carried == set(declared[name]), (name, set(declared[name]) ^ carried)


def test_decoded_fields_are_the_wire_values(socket_path):
    with edgeplan.Planner(socket_path) as planner:
        wire = planner._call("Plan", task="mmlu-redux", deadlineMs=8_000, inputTokens=256)["plan"]
        decision = edgeplan.Decision.from_wire(wire)
        points = planner.frontier("mmlu-redux", 256)
    for python_name, wire_name in edgeplan.types.wire_names(edgeplan.Decision).items():
        if python_name != "predicted":
            assert getattr(decision, python_name) == wire.get(wire_name), python_name
    for python_name, wire_name in edgeplan.types.wire_names(edgeplan.Prediction).items():
        assert getattr(decision.predicted, python_name) == wire["predicted"][wire_name], python_name
    assert decision.capped is True and decision.explored is False
    assert all(point.memory_gib > 0 and point.mean_output_tokens > 0 for point in points)


def test_watch_yields_events_as_they_happen(socket_path):
    with edgeplan.Planner(socket_path) as planner:
        events = planner.watch(kinds=["decision", "reload"])
        # The stream is live once the first event arrives: plan from a second connection meanwhile.
        threading.Timer(0.5, lambda: edgeplan.Planner(socket_path).plan("mmlu-redux", request_id="py-watch")).start()
        first = next(events)
        assert first["kind"] == "decision" and first["event"]["requestId"] == "py-watch" and first["dropped"] == 0
        threading.Timer(0.2, lambda: edgeplan.Planner(socket_path).reload()).start()
        second = next(events)
        assert second["kind"] == "reload" and second["event"]["ok"] is True
        events.close()


def test_what_installing_the_client_writes_is_ignored():
    """`pip install ./clients/python` writes build/ and edgeplan.egg-info/ beside the package; the clone ignores them."""
    for written in ["clients/python/build/lib/edgeplan/client.py", "clients/python/edgeplan.egg-info/PKG-INFO"]:
        checked = subprocess.run(["git", "-C", ROOT, "check-ignore", "-q", written])
        assert checked.returncode == 0, f"{written} is not ignored"
