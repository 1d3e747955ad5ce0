"""Runs the daemon against a private systemd-journald and prints what the journal recorded.

Must run as root inside its own mount namespace (`unshare -m`): it mounts tmpfs on /run and
/var/log/journal so the journal it starts is the only one the daemon and journalctl can see.
Usage: journal_scenario.py BINARY RESULT.json
"""
import json
import os
import signal
import subprocess
import sys
import time

import varlink

binary, result_path = sys.argv[1], sys.argv[2]
for mount_point in ["/run", "/var/log/journal"]:
    os.makedirs(mount_point, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mount_point], check=True)
os.makedirs("/run/systemd/journal")


def wait_for_path(path, timeout=10):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise SystemExit(f"{path} never appeared")
        time.sleep(0.05)


journald = subprocess.Popen(["/lib/systemd/systemd-journald"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_for_path("/run/systemd/journal/socket")
socket_path = "/run/edgeplan-test.sock"
daemon = subprocess.Popen([binary, "serve", "--socket", socket_path], stderr=subprocess.PIPE)
wait_for_path(socket_path)
result = {}
with varlink.Client(address="unix:" + socket_path).open("io.edgeplan.Planner") as planner:
    plan = planner.Plan(task="mmlu-redux", deadlineMs=8000.0, energyBudgetJ=200.0, inputTokens=256, requestId="journal-1")["plan"]
    result["plan"] = plan
    try:
        planner.Plan(task="mmlu-redux", deadlineMs=10.0, inputTokens=256, requestId="journal-2")
    except varlink.VarlinkError as error:
        result["infeasible_error"] = error.error()
time.sleep(1.0)
subprocess.run(["journalctl", "--sync"], check=False)
entries = subprocess.run(["journalctl", "-o", "json", "--no-pager", f"EDGEPLAN_MODEL={plan['model']}"],
                         capture_output=True, text=True, check=True).stdout
result["decided"] = [json.loads(line) for line in entries.splitlines() if line.strip()]
entries = subprocess.run(["journalctl", "-o", "json", "--no-pager", "EDGEPLAN_REQUEST_ID=journal-2"],
                         capture_output=True, text=True, check=True).stdout
result["infeasible"] = [json.loads(line) for line in entries.splitlines() if line.strip()]

# A journal that goes away leaves a stale socket behind: requests must still be answered.
journald.send_signal(signal.SIGKILL)
journald.wait()
with varlink.Client(address="unix:" + socket_path).open("io.edgeplan.Planner") as planner:
    result["after_journal_died"] = planner.Plan(task="mmlu-redux", deadlineMs=8000.0, inputTokens=256, requestId="journal-3")["plan"]["model"]
    time.sleep(0.5)
    result["status_after"] = planner.Status()
daemon.send_signal(signal.SIGTERM)
daemon.wait(timeout=10)
with open(result_path, "w") as out:
    json.dump(result, out)
