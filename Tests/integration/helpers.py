"""What the end-to-end tests share."""
import socket
import time


def wait_until_answers(path, process=None, timeout=20.0):
    """Waits until a daemon accepts connections on `path` (a stale socket file may be there before it binds),
    or until `process` exits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            return
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(path)
                return
        except OSError:
            time.sleep(0.05)


def plan_slack(binary, task, deadlines_ms, input_tokens, *options):
    """For each deadline, the share of it the best idle plan of `task` leaves unused, as `edgeplan plan` predicts
    it: (slack, deadline_ms) pairs, least slack first. Deadlines with no plan are left out."""
    import json
    import subprocess
    found = []
    for deadline_ms in deadlines_ms:
        out = subprocess.run([binary, "plan", "--task", task, "--deadline", f"{deadline_ms}ms", "--input",
                              str(input_tokens), "--json", *options], capture_output=True, text=True)
        if out.returncode == 0:
            p95 = json.loads(out.stdout)["predicted"]["latencyPercentileMs"]
            found.append((1 - p95 / deadline_ms, deadline_ms))
    return sorted(found)
