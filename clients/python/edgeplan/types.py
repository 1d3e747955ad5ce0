"""Typed results of the daemon's calls (units in the names, as on the wire).

Each type carries every field of its counterpart in the interface description (io.edgeplan.Planner.varlink); a test
holds them to it. A field's wire name is its name in camelCase unless its metadata names another.
"""
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Dict, List, Optional


def _wire_name(python_name: str) -> str:
    head, *rest = python_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def wire_names(cls) -> Dict[str, str]:
    """The wire name of each field of a result type, by its Python name."""
    return {f.name: f.metadata.get("wire", _wire_name(f.name)) for f in fields(cls)}


def _decode(cls, wire: Dict[str, Any], **nested):
    """A result type from its wire object; an optional field the daemon left out is None."""
    values = {}
    for f in fields(cls):
        key = f.metadata.get("wire", _wire_name(f.name))
        if f.name in nested:
            values[f.name] = nested[f.name]
        elif key in wire:
            values[f.name] = wire[key]
        elif f.default is MISSING and f.default_factory is MISSING:
            values[f.name] = None
    return cls(**values)


@dataclass(frozen=True)
class Prediction:
    latency_ms: float
    latency_percentile_ms: float
    percentile: float
    energy_j: float
    energy_percentile_j: float
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    accuracy_source: str
    miss_probability: float
    mean_output_tokens: float
    observations: int = 0
    cost_usd_per_m_tok: float = 0.0
    memory_gib: float = field(default=0.0, metadata={"wire": "memoryGiB"})
    percentile_output_tokens: float = 0.0
    # The chance that a sample reaches the plan's token cap.
    cap_probability: float = 0.0
    length_source: str = ""

    @classmethod
    def from_wire(cls, p: Dict[str, Any]) -> "Prediction":
        return _decode(cls, p)


@dataclass(frozen=True)
class Decision:
    """A plan: what to run, what it is predicted to cost and achieve, and the engine request body."""
    task: str
    request_id: str
    model: str
    quantization: str
    mode: str
    token_budget: Optional[int]
    parallel: int
    input_tokens: int
    deadline_ms: float
    predicted: Prediction
    request: Dict[str, Any]
    profile_version: str
    policy_version: str
    # Whether the engine is held to token_budget (max_tokens): outputs never run past it.
    capped: bool = False
    energy_budget_j: Optional[float] = None
    objective: str = "max-accuracy"
    # Whether exploration picked this near-best configuration instead of the best, to learn about it.
    explored: bool = False
    # The load it was planned against, with the ledger on: runsBeside, sequencesBeside, peakSequences, meanSequences,
    # waitMs, idleLatencyPercentileMs, preempts (request ids that must yield) and delayed (their new ends, ms).
    load: Optional[Dict[str, Any]] = None

    @classmethod
    def from_wire(cls, d: Dict[str, Any]) -> "Decision":
        return _decode(cls, d, predicted=Prediction.from_wire(d["predicted"]))


@dataclass(frozen=True)
class FrontPoint:
    model: str
    quantization: str
    mode: str
    token_budget: Optional[int]
    parallel: int
    accuracy: float
    accuracy_source: str
    latency_percentile_ms: float
    energy_j: float
    capped: bool = False
    accuracy_low: float = 0.0
    accuracy_high: float = 1.0
    observations: int = 0
    latency_ms: float = 0.0
    energy_percentile_j: float = 0.0
    cost_usd_per_m_tok: float = 0.0
    memory_gib: float = field(default=0.0, metadata={"wire": "memoryGiB"})
    mean_output_tokens: float = 0.0

    @classmethod
    def from_wire(cls, p: Dict[str, Any]) -> "FrontPoint":
        return _decode(cls, p)


@dataclass(frozen=True)
class ReportResult:
    # Stored: the reply goes out once the report is committed.
    accepted: bool
    # What became of the outcome: "learned", "refused: <why>", "nothing to learn", ...
    learning: str
    predicted_latency_ms: Optional[float] = None
    latency_error_pct: Optional[float] = None
    attributed_energy_j: Optional[float] = None
    # Why a report was not accepted when the store could not be written; accepted means stored.
    reason: Optional[str] = None
    # What the daemon set aside from the report and why (an impossible latency, a start time outside the plan's window).
    warnings: List[str] = field(default_factory=list)
    # What ran beside it on the engine, from the ledger: meanSequences and peakSequences (its own included).
    ran_beside: Optional[Dict[str, Any]] = None

    @property
    def refused(self) -> bool:
        """Whether the outcome's learning part was refused (the run itself is still stored)."""
        return self.learning.startswith("refused")

    @classmethod
    def from_wire(cls, r: Dict[str, Any]) -> "ReportResult":
        return _decode(cls, {**r, "learning": r.get("learning", ""), "warnings": list(r.get("warnings") or [])})
