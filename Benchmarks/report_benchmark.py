#!/usr/bin/env python3
"""Report throughput and reply latency, and Plan latency beside them, on a daemon with an observation store.

Starts `edgeplan serve` on a fresh state directory, then for 1 and 4 clients (one process and one connection each,
raw Varlink frames, no client library in the way) sends Report calls as fast as each client gets its replies, for
a fixed time; and times Plan calls alone first. Prints accepted reports a second and the reply latency p50 / p99 for each,
median and range over the rounds, and how many reports were not accepted (a full queue).

Usage: report_benchmark.py EDGEPLAN_BINARY [--seconds 3] [--rounds 3]
"""
import argparse
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time


def call(connection, method, parameters, buffer):
    connection.sendall(json.dumps({"method": method, "parameters": parameters}).encode() + b"\0")
    while b"\0" not in buffer[0]:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        buffer[0] += chunk
    message, _, rest = buffer[0].partition(b"\0")
    buffer[0] = rest
    return json.loads(message)


def reporter(path, slot, seconds, results):
    connection = socket.socket(socket.AF_UNIX)
    connection.connect(path)
    buffer = [b""]
    latencies, refused = [], 0
    deadline = time.perf_counter() + seconds
    index = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        reply = call(connection, "io.edgeplan.Planner.Report", {
            "requestId": f"b{slot}-{index}-{os.getpid()}", "model": "DSR1-Qwen-1.5B", "quantization": "fp16", "mode": "hard",
            "tokenBudget": 256, "parallel": 1, "inputTokens": 256, "outputTokens": 200, "latencyMs": 4000.0 + index % 7}, buffer)
        latencies.append(time.perf_counter() - started)
        if not reply.get("parameters", {}).get("accepted"):
            refused += 1
        index += 1
    results.put((latencies, refused))


def planner(path, count):
    connection = socket.socket(socket.AF_UNIX)
    connection.connect(path)
    buffer = [b""]
    latencies = []
    for index in range(count):
        started = time.perf_counter()
        call(connection, "io.edgeplan.Planner.Plan", {"task": "mmlu-redux", "deadlineMs": 5000.0, "inputTokens": 256}, buffer)
        latencies.append(time.perf_counter() - started)
    return latencies


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="ep-report-bench-")
    path = os.path.join(directory, "planner.sock")
    # The default policy lets one peer report 1,000 times a second; the benchmark measures the daemon, not that limit.
    policy = os.path.join(directory, "policy.yaml")
    with open(policy, "w") as out:
        out.write("kind: policy\nreporting:\n  max_reports_per_second: 1000000\n")
    daemon = subprocess.Popen([args.binary, "serve", "--socket", path, "--state-dir", os.path.join(directory, "state"), "--rails", "none",
                               "--policy", policy], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        planner(path, 2000)  # warm-up
        # Plan first, on a daemon with no reports behind it: the judging that follows stored reports runs on.
        plan_p50, plan_p99 = [], []
        for _ in range(args.rounds):
            latencies = planner(path, 5000)
            plan_p50.append(percentile(latencies, 0.5) * 1e6)
            plan_p99.append(percentile(latencies, 0.99) * 1e6)
        print(f"Plan, 1 client: p50 {statistics.median(plan_p50):.1f} us [{min(plan_p50):.1f}-{max(plan_p50):.1f}], "
              f"p99 {statistics.median(plan_p99):.1f} us [{min(plan_p99):.1f}-{max(plan_p99):.1f}]")
        for clients in (1, 4):
            rates, p50s, p99s, refusals = [], [], [], []
            for _ in range(args.rounds):
                results = multiprocessing.Queue()
                workers = [multiprocessing.Process(target=reporter, args=(path, slot, args.seconds, results)) for slot in range(clients)]
                for worker in workers:
                    worker.start()
                gathered = [results.get() for _ in workers]
                for worker in workers:
                    worker.join()
                latencies = [value for latencies, _ in gathered for value in latencies]
                refused = sum(refused for _, refused in gathered)
                refusals.append(refused)
                rates.append((len(latencies) - refused) / args.seconds)
                p50s.append(percentile(latencies, 0.5) * 1e3)
                p99s.append(percentile(latencies, 0.99) * 1e3)
            print(f"Report, {clients} client{'s' if clients > 1 else ''}: {statistics.median(rates):,.0f} reports/s "
                  f"[{min(rates):,.0f}-{max(rates):,.0f}]; reply p50 {statistics.median(p50s):.3f} ms [{min(p50s):.3f}-{max(p50s):.3f}], "
                  f"p99 {statistics.median(p99s):.3f} ms [{min(p99s):.3f}-{max(p99s):.3f}]; not accepted: {sum(refusals)}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
