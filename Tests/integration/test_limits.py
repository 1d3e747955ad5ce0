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
