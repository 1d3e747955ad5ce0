"""A client for the EdgePlan daemon: typed plans, reports and status over its Varlink socket.

    from edgeplan import Planner, Infeasible

    with Planner("/run/edgeplan/io.edgeplan.Planner") as planner:
        try:
            decision = planner.plan("grasp-plan", deadline_ms=8000)
        except Infeasible as reason:
            ...  # reason.limit, reason.miss_by_ms, reason.closest
        # run decision.request["body"] on the engine, then:
        planner.report(decision.request_id, latency_ms=812.0, correct=True, sample_output_tokens=[96, 128])

        # or the whole loop in one call: plan, run on the engine, vote, report
        result = planner.run("grasp-plan", prompt, engine="http://127.0.0.1:8080", answer="B", deadline_ms=8000)
"""
from .client import Planner
from .engine import EngineFailure, RunResult
from .errors import (EdgePlanError, Infeasible, InvalidInput, InvalidParameter, PermissionDenied, ReloadFailed, TooManyConnections,
                     UnknownModel, UnknownTask)
from .types import Decision, FrontPoint, Prediction, ReportResult

__all__ = ["Planner", "RunResult", "EngineFailure", "Decision", "Prediction", "FrontPoint", "ReportResult", "EdgePlanError", "Infeasible", "UnknownTask",
           "UnknownModel", "InvalidParameter", "InvalidInput", "ReloadFailed", "PermissionDenied", "TooManyConnections"]
