import sys

from edgeplan import Planner

with Planner(sys.argv[1] if len(sys.argv) > 1 else "/run/edgeplan/io.edgeplan.Planner") as planner:
    decision = planner.plan("grasp-plan")
    # Send decision.request["body"] to the engine; time the run, count each sample's tokens, grade the answer.
    # Here the prediction stands in for what the engine measured.
    latency_ms = decision.predicted.latency_ms
    tokens = [round(decision.predicted.mean_output_tokens)] * decision.parallel
    result = planner.report(decision.request_id, latency_ms=latency_ms, correct=True, sample_output_tokens=tokens)
    print(decision.model, decision.mode, f"x{decision.parallel}", "->", result.learning)
