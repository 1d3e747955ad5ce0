"""End to end: no client can exhaust the daemon. A connection cap with a Varlink error past it, an idle
timeout, and backpressure on a client that sends and never reads (memory stays bounded, others are served)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import varlink

from helpers import wait_until_answers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
PLAN = json.dumps({"method": "io.edgeplan.Planner.Plan", "parameters": {"task": "mmlu-redux", "deadlineMs": 10000}}).encode() + b"\0"


@pytest.fixture
def daemon():
    directory = tempfile.mkdtemp(prefix="ep-limits-", dir="/tmp")
    path = os.path.join(directory, "planner.sock")
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--rails", "none", "--max-connections", "20", "--idle-timeout", "1s"],
                               stderr=subprocess.DEVNULL)
    wait_until_answers(path)
    yield {"socket": path, "pid": process.pid}
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    shutil.rmtree(directory, ignore_errors=True)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def status(daemon):
    with varlink.Client(address="unix:" + daemon["socket"]).open("io.edgeplan.Planner") as planner:
        return planner.Status()


def test_connections_past_the_cap_get_a_varlink_error_and_the_daemon_recovers(daemon):
    # 25 connections against a cap of 20: exactly 5 are turned away. Which 5 depends on the order the event
    # loops set the connections up, so every connection is read.
    held = []
    for _ in range(25):
        connection = socket.socket(socket.AF_UNIX)
        connection.connect(daemon["socket"])
        connection.settimeout(0.5)
        held.append(connection)
    turned_away = 0
    for connection in held:
        try:
            if b"io.edgeplan.Planner.TooManyConnections" in connection.recv(4096):
                turned_away += 1
        except socket.timeout:
            pass  # accepted: it waits for a call
    # Never more than 20 open: at least 5 turned away, one more when the fixture's readiness probe is still
    # being closed on a busy machine.
    assert 5 <= turned_away <= 6
    for connection in held:
        connection.close()
    time.sleep(0.3)
    current = status(daemon)
    assert current["rejectedConnections"] == turned_away
    assert current["connections"] <= 2


def test_idle_connections_are_closed(daemon):
    idle = socket.socket(socket.AF_UNIX)
    idle.connect(daemon["socket"])
    idle.settimeout(5)
    started = time.time()
    assert idle.recv(4096) == b""
    assert 0.8 <= time.time() - started <= 4
    assert status(daemon)["idleClosed"] >= 1


def test_a_client_that_never_reads_cannot_grow_the_daemon_or_starve_others(daemon):
    before = rss_kib(daemon["pid"])
    flood = socket.socket(socket.AF_UNIX)
    flood.connect(daemon["socket"])
    flood.setblocking(False)
    sent = 0
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            sent += flood.send(PLAN * 64)
        except BlockingIOError:
            break  # the daemon stopped reading: backpressure reached the sender
    # Meanwhile another client is served promptly.
    times = []
    with varlink.Client(address="unix:" + daemon["socket"]).open("io.edgeplan.Planner") as planner:
        for _ in range(200):
            start = time.perf_counter()
            planner.Plan(task="mmlu-redux", deadlineMs=10000.0)
            times.append(time.perf_counter() - start)
    times.sort()
    growth_mib = (rss_kib(daemon["pid"]) - before) / 1024
    print(f"flood sent {sent / 1e6:.1f} MB before the daemon stopped reading; RSS growth {growth_mib:.1f} MiB; "
          f"other client p50 {times[100] * 1e3:.2f} ms, p99 {times[197] * 1e3:.2f} ms")
    assert sent < 64 << 20
    assert growth_mib < 64
    assert times[197] < 0.05
    flood.close()


def test_many_plans_over_64_connections_no_errors_and_flat_memory(tmp_path):
    """EDGEPLAN_PLANS plans (default 100,000; 1,000,000 for the long run) over 64 connections at once, timed by
    the C client the benchmark uses: no errors, resident memory grows by less than 5 MB, p99 printed."""
    plans = int(os.environ.get("EDGEPLAN_PLANS", "100000"))
    client = str(tmp_path / "floor_client")
    compiler = shutil.which("cc") or shutil.which("clang")
    assert compiler, "a C compiler (cc or clang) is needed to build the benchmark's client"
    subprocess.run([compiler, "-O2", "-pthread", "-o", client, os.path.join(ROOT, "Benchmarks", "Floor", "floor_client.c")], check=True)
    # The plans remembered for Report are a bounded cache (65,536 by default, about 9 MB when full); a smaller
    # one lets the warm-up fill it, so what is measured after is the steady state.
    policy = tmp_path / "policy.yaml"
    policy.write_text(open(os.path.join(ROOT, "policies", "default.yaml")).read().replace("remembered_plans: 65536", "remembered_plans: 4096"))
    path = str(tmp_path / "planner.sock")
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--rails", "none", "--policy", str(policy)], stderr=subprocess.DEVNULL)
    try:
        wait_until_answers(path)
        message = PLAN[:-1].decode()
        # Warm up to a steady state: every connection's buffers, the fronts, a full plan memory, the allocator's
        # arenas (25,600 plans; resident memory then stays within 0.3 MB over 500,000 more).
        subprocess.run([client, path, message, "400", "64", "0"], check=True, capture_output=True)
        before = rss_kib(process.pid)
        out = subprocess.run([client, path, message, str(plans // 64), "64", "0"], capture_output=True, text=True)
        after = rss_kib(process.pid)
        p50, p99, per_second, calls, errors = out.stdout.split()
        print(f"{calls} plans over 64 connections: {errors} errors, p50 {p50} µs, p99 {p99} µs, {per_second} plans/s; "
              f"resident {before / 1024:.1f} MB before, {after / 1024:.1f} MB after")
        assert out.returncode == 0 and int(errors) == 0
        assert after - before < 5 * 1024
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
