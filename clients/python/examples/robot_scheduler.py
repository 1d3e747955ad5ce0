"""A robot's scheduler loop: ask the planner, run the plan, report what happened.

The 'engine' here is a stand-in that takes as long as the plan predicts (scaled down) and is right as often as
the plan says; a real scheduler sends `decision.request["body"]` to its OpenAI-compatible engine.
Usage: robot_scheduler.py SOCKET [TASKS] [TIME_SCALE]
"""
import random
import sys
import time

from edgeplan import Infeasible, Planner


def run_on_engine(decision, rng, time_scale):
    """Stand-in for the engine: returns (latency_ms, correct, sample_output_tokens)."""
    mean_tokens = max(1.0, decision.predicted.mean_output_tokens)
    tokens = [max(1, int(rng.expovariate(1 / mean_tokens))) for _ in range(decision.parallel)]
    # An engine stops every sample at the request's max_tokens, in any mode: a capped plan's budget, or what fits.
    max_tokens = decision.request.get("body", {}).get("max_tokens")
    if max_tokens:
        tokens = [min(t, max_tokens) for t in tokens]
    # Decoding dominates: the run lasts about as long as its longest sample takes, near the prediction at the mean.
    latency_ms = decision.predicted.latency_ms * max(max(tokens) / mean_tokens, 0.3) * rng.uniform(0.95, 1.05)
    time.sleep(latency_ms / 1000 * time_scale)
    return latency_ms, rng.random() < decision.predicted.accuracy, tokens


def main(socket_path, tasks=20, time_scale=0.0):
    rng = random.Random(3)
    done = infeasible = refused = 0
    with Planner(socket_path) as planner:
        for index in range(tasks):
            task, deadline_ms = rng.choice([("mmlu-redux", 10_000), ("mmlu-redux", 60_000), ("natural-plan-meeting", 300_000)])
            try:
                decision = planner.plan(task, deadline_ms=deadline_ms)
            except Infeasible as reason:
                infeasible += 1
                misses = {"deadline": f"{reason.miss_by_ms} ms", "energyBudget": f"{reason.miss_by_j} J",
                          "minAccuracy": f"{reason.miss_by_accuracy}"}.get(reason.limit, "-")
                print(f"{task}: infeasible ({reason.limit}, missing by {misses})")
                continue
            latency_ms, correct, tokens = run_on_engine(decision, rng, time_scale)
            result = planner.report(decision.request_id, latency_ms=latency_ms, correct=correct, sample_output_tokens=tokens,
                                    output_tokens=max(tokens))
            done += 1
            refused += result.refused
            print(f"{task}: {decision.model} {decision.mode}{' capped' if decision.capped else ''} x{decision.parallel}"
                  f"{' (explored)' if decision.explored else ''} -> {latency_ms:.0f} ms, "
                  f"{'correct' if correct else 'wrong'}; {result.learning}")
    print(f"{done} tasks run, {infeasible} infeasible, {refused} reports refused as teaching")
    return done, infeasible


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20, float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
