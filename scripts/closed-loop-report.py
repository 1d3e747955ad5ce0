#!/usr/bin/env python3
"""Figures of a closed-loop run (scripts/closed-loop.py's JSON lines): deadline hits by phase for the adaptive and
the static daemon, when the adaptive one recalibrated, the planners' decisions by phase, and, re-predicted with a
profile at every run's actual lengths, the latency and energy errors and the parallel scaling.

Usage: closed-loop-report.py RESULTS.jsonl --profile DIR [--edgeplan BIN] [--json OUT]
"""
import argparse
import json
import statistics
import subprocess
from collections import Counter, defaultdict

PHASES = ["before", "slowdown", "after", "naive", "after-naive"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--edgeplan", default=".build/debug/edgeplan")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.results)]
    figures = {"runs": len(rows)}

    print("deadline hits (runs that met their deadline / runs planned), by phase")
    hits = {}
    for daemon in ("adaptive", "static"):
        cells = []
        for phase in PHASES:
            planned = [r for r in rows if r["daemon"] == daemon and r["phase"] == phase and r["outcome"] in ("answered", "cut")]
            hit = sum(1 for r in planned if r.get("hit"))
            infeasible = sum(1 for r in rows if r["daemon"] == daemon and r["phase"] == phase and r["outcome"] == "infeasible")
            hits[f"{daemon}/{phase}"] = [hit, len(planned), infeasible]
            cells.append(f"{phase} {hit}/{len(planned)} ({100 * hit / max(1, len(planned)):.0f} %, {infeasible} infeasible)")
        print(f"  {daemon:8s} " + "; ".join(cells))
    figures["hits"] = hits

    adaptive = [r for r in rows if r["daemon"] == "adaptive"]
    starts = {}
    for r in adaptive:
        starts.setdefault(r["phase"], r["index"])
    recalibrations = []
    previous = 0
    for r in adaptive:
        count = r.get("calibration", {}).get("recalibrations", 0)
        if count != previous:
            recalibrations.append({"index": r["index"], "phase": r["phase"], "count": count,
                                   "variants": {k: v.get("biasPct") for k, v in r["calibration"]["variants"].items()}})
            previous = count
    print("recalibrations of the adaptive daemon (request index, phase; phases start at "
          + ", ".join(f"{p} {starts[p]}" for p in PHASES if p in starts) + ")")
    for event in recalibrations:
        reports = sum(1 for r in adaptive if starts[event["phase"]] <= r["index"] <= event["index"] and r["outcome"] != "infeasible")
        print(f"  #{event['count']} at request {event['index']} ({event['phase']}, {reports} reported runs into the phase)")
    figures["recalibrations"] = recalibrations

    print("decisions (model, budget x k: runs), by phase")
    for daemon in ("adaptive", "static"):
        for phase in PHASES:
            chosen = Counter(f"{r['model'].split('-')[1]}-{r['model'].split('-')[2]} {r['tokenBudget']}x{r['parallel']}"
                             for r in rows if r["daemon"] == daemon and r["phase"] == phase and r.get("model"))
            print(f"  {daemon:8s} {phase:12s} " + ", ".join(f"{k}: {v}" for k, v in chosen.most_common(5)))

    # Re-prediction at the actual lengths: what the profile says each run should have taken and cost.
    cache = {}

    def predict(r):
        key = (r["model"], r["inputTokens"], max(r["sampleOutputTokens"]), r["parallel"])
        if key not in cache:
            out = subprocess.run([args.edgeplan, "predict", "--profile", args.profile, "--model", key[0], "--input", str(key[1]),
                                  "--output", str(max(1, key[2])), "--parallel", str(key[3]), "--json"],
                                 capture_output=True, text=True, check=True)
            cache[key] = json.loads(out.stdout)
        return cache[key]

    print(f"latency at the actual lengths, {args.profile}")
    errors = defaultdict(list)
    by_k = defaultdict(list)
    for r in rows:
        if r["outcome"] not in ("answered", "cut") or not r.get("sampleOutputTokens") or max(r["sampleOutputTokens"]) < 8:
            continue
        predicted = predict(r)
        latency_ms = predicted["latencyS"] * 1000 if "latencyS" in predicted else predicted["latencyMs"]
        errors[r["phase"]].append(abs(latency_ms - r["latencyMs"]) / r["latencyMs"] * 100)
        if r["phase"] in ("before", "after-naive") and r["outcome"] == "answered":
            by_k[(r["model"], r["parallel"])].append(r["latencyMs"] / latency_ms)
    for phase in PHASES:
        if errors[phase]:
            print(f"  {phase:12s} MAPE {statistics.mean(errors[phase]):6.1f} % over {len(errors[phase])} runs")
    figures["latencyMAPE"] = {phase: statistics.mean(v) for phase, v in errors.items() if v}
    print("measured / predicted latency by model and k (unloaded phases, runs that finished)")
    for (model, k), ratios in sorted(by_k.items()):
        print(f"  {model:24s} k={k}: {statistics.median(ratios):.2f} (median of {len(ratios)})")
    figures["measuredOverPredictedByK"] = {f"{m} k={k}": statistics.median(v) for (m, k), v in by_k.items()}

    # Energy over windows of 20 adaptive runs: the daemon's NVML attribution against the profile at actual lengths.
    measured = [(r, predict(r)) for r in adaptive if r.get("energyJ") and r.get("sampleOutputTokens") and max(r["sampleOutputTokens"]) >= 8]
    windows = []
    for start in range(0, len(measured) - 19, 20):
        window = measured[start:start + 20]
        joules = sum(r["energyJ"] for r, _ in window)
        predicted = sum(p["energyJ"] for _, p in window)
        windows.append(abs(predicted - joules) / joules * 100)
    if windows:
        print(f"energy over windows of 20 runs (NVML, attributed by the daemon): MAPE {statistics.mean(windows):.1f} % over {len(windows)} windows")
        figures["energyWindowMAPE"] = statistics.mean(windows)
    # Per run, by phase: under a load the rails also count the loader's power, which no run's prediction includes.
    per_run = defaultdict(list)
    for r, p in measured:
        per_run[r["phase"]].append(abs(p["energyJ"] - r["energyJ"]) / r["energyJ"] * 100)
    if per_run:
        print("energy per run (NVML, attributed by the daemon) against the profile at the actual lengths")
        for phase in PHASES:
            if per_run[phase]:
                print(f"  {phase:12s} MAPE {statistics.mean(per_run[phase]):6.1f} % over {len(per_run[phase])} runs")
        figures["energyMAPE"] = {phase: statistics.mean(v) for phase, v in per_run.items()}
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=1)


if __name__ == "__main__":
    main()
