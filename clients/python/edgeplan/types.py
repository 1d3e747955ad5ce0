"""Typed results of the daemon's calls (units in the names, as on the wire)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


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
    observations: int
    miss_probability: float
    mean_output_tokens: float

    @classmethod
    def from_wire(cls, p: Dict[str, Any]) -> "Prediction":
        return cls(p["latencyMs"], p["latencyPercentileMs"], p["percentile"], p["energyJ"], p.get("energyPercentileJ", p["energyJ"]),
                   p["accuracy"], p.get("accuracyLow", p["accuracy"]), p.get("accuracyHigh", p["accuracy"]), p["accuracySource"],
                   p.get("observations", 0), p["missProbability"], p["meanOutputTokens"])


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

    @classmethod
    def from_wire(cls, d: Dict[str, Any]) -> "Decision":
        return cls(d["task"], d["requestId"], d["model"], d["quantization"], d["mode"], d.get("tokenBudget"), d["parallel"],
                   d["inputTokens"], d["deadlineMs"], Prediction.from_wire(d["predicted"]), d["request"], d["profileVersion"],
                   d["policyVersion"])


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

    @classmethod
    def from_wire(cls, p: Dict[str, Any]) -> "FrontPoint":
        return cls(p["model"], p["quantization"], p["mode"], p.get("tokenBudget"), p["parallel"], p["accuracy"], p["accuracySource"],
                   p["latencyPercentileMs"], p["energyJ"])


@dataclass(frozen=True)
class ReportResult:
    accepted: bool
    learning: str
    predicted_latency_ms: Optional[float]
    latency_error_pct: Optional[float]
    attributed_energy_j: Optional[float] = None
    # Why a report was not accepted when the store could not be written; accepted means stored.
    reason: Optional[str] = None
    # What the daemon set aside from the report and why (an impossible latency, a start time outside the plan's window).
    warnings: List[str] = field(default_factory=list)

    @classmethod
    def from_wire(cls, r: Dict[str, Any]) -> "ReportResult":
        return cls(r["accepted"], r.get("learning", ""), r.get("predictedLatencyMs"), r.get("latencyErrorPct"), r.get("attributedEnergyJ"),
                   r.get("reason"), list(r.get("warnings") or []))
