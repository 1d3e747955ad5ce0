"""Live operations: GetPolicy, Reload (refusing a broken policy and keeping the old one), and the CLI on top."""
import os
import shutil
import signal
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
    policy = cli("policy", "show", "--socket", daemon["socket"])
    assert policy.returncode == 0 and '"grasp-plan"' in policy.stdout


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
