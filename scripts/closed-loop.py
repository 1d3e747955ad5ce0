#!/usr/bin/env python3
"""The closed loop on a real engine: a seeded sequence of requests, each run twice back to back, once through a
daemon that learns from its reports (adaptive) and once through one that is never told anything (static), while a
second process loads the GPU for a while, then stops, then loads it harder.

Each request goes through the Python client's `run()`: plan, run the plan on the engine serving its model, vote,
and (adaptive only) report; the daemon attributes the run's energy from its power rails. Writes one JSON line per
run, with the phase, the plan, the prediction, what was measured, and the adaptive daemon's calibration state.

Usage: closed-loop.py --adaptive SOCKET --static SOCKET --engine MODEL=URL [--engine MODEL=URL ...]
                      --requests N --out FILE [--loader "CMD"] [--naive-loader "CMD"] [--tasks TASK,...] [--seed S]
                      [--phases before:0.35,slowdown:0.25,after:0.15,naive:0.10,after-naive:0.15]
"""
import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients", "python"))
from edgeplan import EngineFailure, Infeasible, Planner  # noqa: E402

# (name, share of the sequence, loader): the phases in order.
PHASES = [("before", 0.35, None), ("slowdown", 0.25, "loader"), ("after", 0.15, None), ("naive", 0.10, "naive"), ("after-naive", 0.15, None)]
DEADLINES_S = [0.5, 0.8, 1.0, 1.5, 2.0]
ENERGY_BUDGETS_J = [None, None, None, 300.0, 600.0]
PROMPT = "A part lies on one of four shelves. Which shelf holds part {index}?\nA. top\nB. middle\nC. bottom\nD. none"


def parse_phases(text):
    """The phases' shares, NAME:SHARE,...: every phase named once, in the usual order, shares summing to 1."""
    loaders = {name: loader for name, _, loader in PHASES}
    phases = []
    for item in text.split(","):
        name, _, share = item.partition(":")
        if name not in loaders:
            raise SystemExit(f"--phases: unknown phase '{name}' (the phases are {', '.join(loaders)})")
        try:
            phases.append((name, float(share), loaders[name]))
        except ValueError:
            raise SystemExit(f"--phases: the share of '{name}' is not a number: '{share}'")
    if [name for name, _, _ in phases] != list(loaders):
        raise SystemExit(f"--phases: name every phase once, in order: {', '.join(loaders)}")
    if abs(sum(share for _, share, _ in phases) - 1) > 1e-6:
        raise SystemExit(f"--phases: the shares sum to {sum(share for _, share, _ in phases):g}, not 1")
    return phases


def phase_of(index, total, phases=PHASES):
    edge = 0.0
    for name, share, loader in phases:
        edge += share
        if index < round(edge * total):
            return name, loader
    return phases[-1][0], phases[-1][2]


def calibration(planner):
    state = planner.status().get("calibration") or {}
    return {"recalibrations": state.get("recalibrations", 0),
            "variants": {v["variant"]: {"state": v.get("state"), "biasPct": v.get("biasPct"), "reports": v.get("reports")}
                         for v in state.get("variants", [])}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adaptive", required=True)
    parser.add_argument("--static", required=True)
    parser.add_argument("--engine", action="append", required=True, help="MODEL=URL")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", required=True)
    parser.add_argument("--loader")
    parser.add_argument("--naive-loader")
    parser.add_argument("--tasks", default="mmlu-redux,mmlu,recall")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--phases", type=parse_phases, default=PHASES, help="NAME:SHARE,... for the five phases, in order")
    args = parser.parse_args()
    engines = dict(pair.split("=", 1) for pair in args.engine)
    tasks = args.tasks.split(",")
    rng = random.Random(args.seed)
    loaders = {"loader": args.loader, "naive": args.naive_loader}
    running = None
    running_name = None
    started = time.monotonic()
    with Planner(args.adaptive) as adaptive, Planner(args.static) as static, open(args.out, "w") as out:
        for index in range(args.requests):
            phase, loader = phase_of(index, args.requests, args.phases)
            if loader != running_name:
                if running is not None:
                    running.terminate()
                    running.wait(30)
                    running = None
                if loader and loaders.get(loader):
                    running = subprocess.Popen(shlex.split(loaders[loader]), stdout=subprocess.DEVNULL, stderr=sys.stderr)
                    time.sleep(2.0)  # the loader's warm-up
                running_name = loader
                print(f"[{time.monotonic() - started:6.1f} s] request {index}: phase {phase}", flush=True)
            task = rng.choice(tasks)
            deadline_s = rng.choice(DEADLINES_S)
            energy_j = rng.choice(ENERGY_BUDGETS_J)
            prompt = PROMPT.format(index=index)
            for name, planner in (("adaptive", adaptive), ("static", static)):
                row = {"index": index, "phase": phase, "daemon": name, "task": task, "deadlineMs": deadline_s * 1000, "energyBudgetJ": energy_j,
                       "time": round(time.monotonic() - started, 3)}
                try:
                    result = planner.run(task, prompt, engine=engines, deadline_ms=deadline_s * 1000, energy_budget_j=energy_j,
                                         report=(name == "adaptive"))
                    decision = result.decision
                    row.update(outcome=result.outcome, model=decision.model, mode=decision.mode, tokenBudget=decision.token_budget,
                               parallel=decision.parallel, inputTokens=decision.input_tokens,
                               predictedLatencyMs=decision.predicted.latency_ms,
                               predictedLatencyPercentileMs=decision.predicted.latency_percentile_ms,
                               predictedEnergyJ=decision.predicted.energy_j, latencyMs=round(result.latency_ms, 3),
                               sampleOutputTokens=result.sample_output_tokens, energyJ=result.energy_j,
                               hit=result.outcome == "answered" and result.latency_ms <= deadline_s * 1000,
                               learning=result.report.learning if result.report else None)
                except Infeasible as reason:
                    row.update(outcome="infeasible", reason=str(reason))
                except EngineFailure as failure:
                    row.update(outcome="engine-error", error=str(failure))
                if name == "adaptive":
                    row["calibration"] = calibration(adaptive)
                out.write(json.dumps(row) + "\n")
                out.flush()
    if running is not None:
        running.terminate()
        running.wait(30)
    print(f"done: {args.requests} requests x 2 daemons in {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
