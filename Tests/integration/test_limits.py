"""End to end: no client can exhaust the daemon. A connection cap with a Varlink error past it, an idle
timeout, and backpressure on a client that sends and never reads (memory stays bounded, others are served)."""
import json
import os
import shutil
import signal
import resource
import socket
import statistics
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


def build_floor_client(directory):
    """The benchmark's C timing client, built into `directory`."""
    client = os.path.join(directory, "floor_client")
    compiler = shutil.which("cc") or shutil.which("clang")
    assert compiler, "a C compiler (cc or clang) is needed to build the benchmark's client"
    subprocess.run([compiler, "-O2", "-pthread", "-o", client, os.path.join(ROOT, "Benchmarks", "Floor", "floor_client.c")], check=True)
    return client


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
    the C client the benchmark uses: no errors, resident memory grows by less than 2 MB over the second half, p99 printed."""
    plans = int(os.environ.get("EDGEPLAN_PLANS", "100000"))
    client = build_floor_client(str(tmp_path))
    # The plans remembered for Report are a bounded cache (65,536 by default, about 9 MB when full); a smaller
    # one lets the warm-up fill it, so what is measured after is the steady state.
    policy = tmp_path / "policy.yaml"
    # Decisions are journaled one in 1,000: without journald they go to stderr, and a release build plans faster than
    # that writer, so its bounded queue (4,096 entries, a few MB) would fill during the run and read as growth.
    policy.write_text(open(os.path.join(ROOT, "policies", "default.yaml")).read().replace("remembered_plans: 65536", "remembered_plans: 4096")
                      + "journal:\n  decisions_every: 1000\n")
    path = str(tmp_path / "planner.sock")
    # With the unit's allocator setting (two malloc arenas): otherwise glibc may open another arena at any moment
    # under contention, a one-time step of about 5 MB that is no leak but would hide one.
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--rails", "none", "--policy", str(policy)], stderr=subprocess.DEVNULL,
                               env=dict(os.environ, MALLOC_ARENA_MAX="2"))
    try:
        wait_until_answers(path)
        message = PLAN[:-1].decode()
        # Warm up: every connection's buffers, the fronts, a full plan memory.
        subprocess.run([client, path, message, "100", "64", "0"], check=True, capture_output=True)
        # The allocator's arenas settle during the first tens of thousands of plans; growth after that is a leak.
        before = rss_kib(process.pid)
        half = subprocess.run([client, path, message, str(plans // 128), "64", "0"], capture_output=True, text=True)
        middle = rss_kib(process.pid)
        out = subprocess.run([client, path, message, str(plans // 128), "64", "0"], capture_output=True, text=True)
        after = rss_kib(process.pid)
        p50, p99, per_second, calls, errors = out.stdout.split()
        first_errors = int(half.stdout.split()[4])
        print(f"{2 * int(calls)} plans over 64 connections: {first_errors + int(errors)} errors; second half p50 {p50} µs, p99 {p99} µs, "
              f"{per_second} plans/s; resident {before / 1024:.1f} MB before, {middle / 1024:.1f} MB half-way, {after / 1024:.1f} MB after")
        assert half.returncode == 0 and out.returncode == 0 and first_errors == 0 and int(errors) == 0
        assert after - middle < 2 * 1024
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hold the connections as another user")
def test_five_thousand_idle_connections_lock_no_one_out():
    """One user opens 5,000 connections and leaves them idle: it gets its share (1,024 by default), the rest are
    turned away with TooManyConnections (or replace its own longest-idle ones), and another user's Plan calls keep p99 under 2 ms (a debug build: its p99
    without the idle connections) with resident memory far under the unit's MemoryMax (256 MB)."""
    directory = tempfile.mkdtemp(prefix="ep-idle-", dir="/tmp")
    os.chmod(directory, 0o755)  # reachable by the other user, as for a member of the socket's group
    path = os.path.join(directory, "planner.sock")
    process = subprocess.Popen([BINARY, "serve", "--socket", path, "--rails", "none"], stderr=subprocess.DEVNULL)
    try:
        wait_until_answers(path)
        os.chmod(path, 0o666)
        # Another user's plans, timed by the benchmark's C client (the Python client alone adds about 0.5 ms a call),
        # first without the idle connections, then with them.
        client = build_floor_client(directory)
        message = PLAN[:-1].decode()
        subprocess.run([client, path, message, "200", "1", "0"], check=True, capture_output=True)
        # Three rounds each, medians: one round's p99 on a shared 2-core machine is noise (0.1 to 2.3 ms seen).
        def timed():
            rounds = [subprocess.run([client, path, message, "2000", "1", "0"], check=True, capture_output=True, text=True).stdout.split()
                      for _ in range(3)]
            return [statistics.median(float(round[column]) for round in rounds) for column in (0, 1)] + [sum(int(round[4]) for round in rounds)]
        baseline = timed()
        before = rss_kib(process.pid)
        opened_read, opened_write = os.pipe()
        release_read, release_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (6000, 6000))
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                held = []
                for _ in range(5000):
                    connection = socket.socket(socket.AF_UNIX)
                    connection.connect(path)
                    held.append(connection)
                os.write(opened_write, b"1")
                os.read(release_read, 1)
            finally:
                os._exit(0)
        os.close(opened_write)
        os.close(release_read)
        assert os.read(opened_read, 1) == b"1", "the other user could not open its connections"
        time.sleep(2)
        p50, p99, errors = timed()
        current = status({"socket": path})
        after = rss_kib(process.pid)
        os.write(release_write, b"1")
        os.waitpid(pid, 0)
        print(f"5,000 idle connections from one user: {current['connections']} held, {current['rejectedConnections']} turned away; "
              f"another user's plans (3 rounds of 2,000, medians): {errors} errors, p50 {p50 / 1000:.3f} ms, p99 {p99 / 1000:.3f} ms "
              f"(without them: p50 {baseline[0] / 1000:.3f} ms, p99 {baseline[1] / 1000:.3f} ms); "
              f"resident {before / 1024:.1f} MB before, {after / 1024:.1f} MB after")
        assert errors == 0 and baseline[2] == 0
        assert current["connections"] == 1024 + 1
        # Past its share, each new connection is turned away, or takes the place of one of the user's own that
        # has idled a second or more (closed to make room).
        assert current["rejectedConnections"] + current["idleClosed"] == 5000 - 1024
        # 2 ms, or for a slow (debug) build no worse than its own p99 without the idle connections, with slack for noise.
        assert p99 < max(2000, 1.5 * baseline[1] + 500)
        assert after < 256 * 1024
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        shutil.rmtree(directory, ignore_errors=True)
