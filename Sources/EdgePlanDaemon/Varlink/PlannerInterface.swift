/// The Varlink interface description of `io.edgeplan.Planner`, served as is by `GetInterfaceDescription`.
public enum PlannerInterface {
    public static let name = "io.edgeplan.Planner"

    public static let description = """
    # Deployment planner for reasoning LLMs on edge GPUs: which model, quantization,
    # length-control mode, token budget and parallel factor meet a request's deadline
    # and energy budget with the highest predicted accuracy.
    interface io.edgeplan.Planner

    # Predictions for a configuration.
    type Prediction (
      latencyMs: float,
      latencyPercentileMs: float,
      percentile: float,
      energyJ: float,
      accuracy: float,
      accuracySource: string,
      costUsdPerMTok: float,
      memoryGiB: float,
      missProbability: float,
      meanOutputTokens: float
    )

    # A chosen configuration (a plan); request holds the OpenAI-compatible body and its aggregation.
    type Decision (
      task: string,
      requestId: ?string,
      model: string,
      quantization: string,
      mode: string,
      tokenBudget: ?int,
      capped: bool,
      parallel: int,
      inputTokens: int,
      deadlineMs: float,
      energyBudgetJ: ?float,
      predicted: Prediction,
      request: object,
      profileVersion: string,
      policyVersion: string
    )

    # One point of a Pareto front.
    type FrontPoint (
      model: string,
      quantization: string,
      mode: string,
      tokenBudget: ?int,
      capped: bool,
      parallel: int,
      accuracy: float,
      accuracySource: string,
      latencyMs: float,
      latencyPercentileMs: float,
      energyJ: float,
      costUsdPerMTok: float,
      memoryGiB: float,
      meanOutputTokens: float
    )

    # Chooses a configuration for one request.
    method Plan(
      task: string,
      deadlineMs: float,
      energyBudgetJ: ?float,
      inputTokens: int,
      minAccuracy: ?float,
      requestId: ?string
    ) -> (plan: Decision)

    # The accuracy / latency / energy Pareto front of a task at an input length.
    method Frontier(task: string, inputTokens: int) -> (task: string, inputTokens: int, points: []FrontPoint)

    # Reports the outcome of a plan that ran. startedAt is Unix time in seconds; without energyJ the
    # daemon attributes energy from its power rails over [startedAt, startedAt + latency].
    method Report(
      requestId: string,
      model: string,
      quantization: string,
      mode: string,
      tokenBudget: ?int,
      parallel: int,
      inputTokens: int,
      outputTokens: int,
      latencyMs: float,
      energyJ: ?float,
      startedAt: ?float,
      correct: ?bool
    ) -> (accepted: bool, predictedLatencyMs: float, latencyErrorPct: float, attributedEnergyJ: ?float)

    # Version, uptime, loaded profile and policy, counters; calibration state, age and error per model.
    method Status() -> (
      version: string,
      uptimeS: float,
      device: string,
      profileVersion: string,
      policyVersion: string,
      lastReloadError: ?string,
      plans: int,
      infeasible: int,
      errors: int,
      reports: int,
      reloads: int,
      cachedFronts: int,
      journalDropped: int,
      journalFailed: int,
      calibration: ?object
    )

    # No configuration meets the request's limits; limit names which one, closest the nearest miss.
    error Infeasible (task: string, limit: string, message: string, missBy: ?float, closest: object)
    # The task has no accuracy data in the loaded profile.
    error UnknownTask (task: string, known: []string)
    # The model or quantization is not in the loaded profile.
    error UnknownModel (model: string, message: string)
    """
}
