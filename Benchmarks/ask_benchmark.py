#!/usr/bin/env python3
"""What the whole-loop call costs on top of the engine: `Planner.run()` against a bare `Plan`, and against the
engine's own time for the same request.

Starts `edgeplan serve` on a profile and policy whose plan for the task runs about a second on the engine, then, in
alternating rounds over one daemon connection and one engine connection pool: times bare `Plan` calls, and full
`run()` calls (plan, run on the engine, vote, report). For each `run()` the client's own overhead is its wall time
less the engine request as the client saw it, and the engine request less the engine's own `timings` (HTTP and
streaming). Prints medians with ranges over the rounds, and the overhead as a share of the engine's time.

Usage: ask_benchmark.py EDGEPLAN_BINARY --engine URL --profile DIR --task TASK [--deadline-ms 1500] [--calls 20] [--rounds 3]
  (the engine must serve the profile's model; Tests/engine makes one: see that folder's conftest.py)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients", "python"))
from edgeplan import Planner  # noqa: E402
from edgeplan import engine as engine_module  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("edgeplan")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--policy")
    parser.add_argument("--task", required=True)
    parser.add_argument("--engine-model")
    parser.add_argument("--deadline-ms", type=float, default=1500)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="ask-bench-")
    socket_path = os.path.join(work, "planner.sock")
    command = [args.edgeplan, "serve", "--socket", socket_path, "--profile", args.profile, "--rails", "none"]
    if args.policy:
        command += ["--policy", args.policy]
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(socket_path):
            time.sleep(0.05)
        # The engine's own time for each request, read from the stream's timings.
        own = []
        original = engine_module.EngineConnections.run

        def timed_run(self, body, requests=1, deadline_s=None):
            started = time.perf_counter()
            ran = original(self, body, requests, deadline_s)
            own.append(((time.perf_counter() - started) * 1000, ran.engine_ms))
            return ran

        engine_module.EngineConnections.run = timed_run
        rounds = []
        with Planner(socket_path) as planner:
            planner.run(args.task, "warm-up", engine=args.engine, deadline_ms=args.deadline_ms, engine_model=args.engine_model)
            for _ in range(args.rounds):
                plans = []
                for _ in range(args.calls):
                    started = time.perf_counter()
                    planner.plan(args.task, deadline_ms=args.deadline_ms, input_tokens=8)
                    plans.append((time.perf_counter() - started) * 1000)
                totals, engine_ms, engine_own = [], [], []
                for index in range(args.calls):
                    own.clear()
                    started = time.perf_counter()
                    result = planner.run(args.task, f"Which shelf holds part {index}?", engine=args.engine,
                                         deadline_ms=args.deadline_ms, engine_model=args.engine_model)
                    totals.append((time.perf_counter() - started) * 1000)
                    engine_ms.append(own[0][0])
                    engine_own.append(own[0][1] or own[0][0])
                    if result.outcome != "answered":
                        print(f"warning: a run was {result.outcome}", file=sys.stderr)
                overhead = [t - e for t, e in zip(totals, engine_ms)]
                transport = [e - o for e, o in zip(engine_ms, engine_own)]
                rounds.append({"plan": statistics.median(plans), "engine": statistics.median(engine_ms),
                               "own": statistics.median(engine_own), "overhead": statistics.median(overhead),
                               "share": statistics.median(o / e * 100 for o, e in zip(overhead, engine_own)),
                               "transport": statistics.median(transport),
                               "all": statistics.median((t - o) / o * 100 for t, o in zip(totals, engine_own))})
    finally:
        daemon.terminate()
        daemon.wait(10)

    def summary(key, unit):
        values = [r[key] for r in rounds]
        return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}] {unit}"

    print(f"{args.rounds} rounds of {args.calls} calls each; median [range] over the rounds of each round's median")
    print(f"  bare Plan call:                      {summary('plan', 'ms')}")
    print(f"  engine request, as the client saw it: {summary('engine', 'ms')}")
    print(f"  the engine's own time (timings):      {summary('own', 'ms')}")
    print(f"  run() less its engine request:        {summary('overhead', 'ms')} (plan, fill, vote, report) = {summary('share', '%')} of the engine's own time")
    print(f"  HTTP and streaming (client less own): {summary('transport', 'ms')}")
    print(f"  run() against the engine's own time:  +{summary('all', '%')} in all")


if __name__ == "__main__":
    main()
