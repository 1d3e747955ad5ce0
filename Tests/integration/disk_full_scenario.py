"""Runs the daemon with its state directory on a tiny tmpfs until the disk is full; prints what Status said.

Must run as root inside its own mount namespace (`unshare -m`). Usage: disk_full_scenario.py BINARY DIR RESULT.json
"""
import json
import os
import signal
import subprocess
import sys
import time

import varlink

from helpers import wait_until_answers

binary, directory, result_path = sys.argv[1], sys.argv[2], sys.argv[3]
state = os.path.join(directory, "state")
os.makedirs(state, exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", state], check=True)
path = os.path.join(directory, "planner.sock")
daemon = subprocess.Popen([binary, "serve", "--socket", path, "--state-dir", state, "--rails", "none"], stderr=subprocess.DEVNULL)
wait_until_answers(path)
result = {}
try:
    with varlink.Client(address="unix:" + path).open("io.edgeplan.Planner") as planner:
        for index in range(3000):
            planner.Report(requestId=f"r{index}-" + "x" * 200, model="DSR1-Qwen-1.5B", quantization="fp16", mode="base", parallel=1,
                           inputTokens=256, outputTokens=100 + index % 50, latencyMs=2500.0)
        for _ in range(400):
            status = planner.Status()
            if status["calibration"]["pendingReports"] == 0:
                break
            time.sleep(0.05)
        result["status"] = status["calibration"]
        result["plan"] = "plan" in planner.Plan(task="mmlu-redux", deadlineMs=10000.0)
finally:
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)
    result["exit"] = daemon.returncode
    with open(result_path, "w") as handle:
        json.dump(result, handle)
