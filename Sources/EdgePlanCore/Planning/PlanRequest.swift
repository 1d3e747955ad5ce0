/// A request for a configuration: the task, its limits and its input length.
public struct PlanRequest: Sendable, Equatable {
    public var task: String
    /// Deadline in seconds; nil takes the policy's default for the task.
    public var deadlineS: Double?
    public var energyBudgetJ: Double?
    /// Prompt tokens; nil takes the task's typical input length.
    public var inputTokens: Int?
    public var minAccuracy: Double?
    public var objective: Objective?
    public var requestID: String?
    /// The engine's context for one sequence of this request (llama-server: a slot's `n_ctx`), in tokens: the prompt
    /// and the engine's `max_tokens` must fit in it. Nil: the model's own context from the profile.
    public var contextTokens: Int?

    public init(
        task: String,
        deadlineS: Double? = nil,
        energyBudgetJ: Double? = nil,
        inputTokens: Int? = nil,
        minAccuracy: Double? = nil,
        objective: Objective? = nil,
        requestID: String? = nil,
        contextTokens: Int? = nil
    ) {
        self.task = task
        self.deadlineS = deadlineS
        self.energyBudgetJ = energyBudgetJ
        self.inputTokens = inputTokens
        self.minAccuracy = minAccuracy
        self.objective = objective
        self.requestID = requestID
        self.contextTokens = contextTokens
    }

    /// Largest prompt the planner accepts.
    public static let maxInputTokens = 1_000_000

    /// Rejects zero, negative, non-finite and absurd values with an error naming the field.
    public func validate() throws {
        if task.isEmpty { throw EdgePlanError.invalidInput("task must not be empty", field: "task") }
        if let deadlineS {
            guard deadlineS.isFinite, deadlineS > 0 else {
                throw EdgePlanError.invalidInput(
                    "deadline must be a positive, finite duration (got \(deadlineS) s)",
                    field: "deadline"
                )
            }
            guard deadlineS <= 7 * 24 * 3600 else {
                throw EdgePlanError.invalidInput(
                    "deadline of \(deadlineS) s is longer than a week; that is not a latency limit",
                    field: "deadline"
                )
            }
        }
        if let energyBudgetJ {
            guard energyBudgetJ.isFinite, energyBudgetJ > 0 else {
                throw EdgePlanError.invalidInput(
                    "energy budget must be positive and finite (got \(energyBudgetJ) J)",
                    field: "energyBudget"
                )
            }
            guard energyBudgetJ <= 1e9 else {
                throw EdgePlanError.invalidInput("energy budget of \(energyBudgetJ) J is absurd", field: "energyBudget")
            }
        }
        if let inputTokens {
            guard inputTokens > 0 else {
                throw EdgePlanError.invalidInput(
                    "input tokens must be positive (got \(inputTokens))",
                    field: "inputTokens"
                )
            }
            guard inputTokens <= Self.maxInputTokens else {
                throw EdgePlanError.invalidInput(
                    "input of \(inputTokens) tokens exceeds \(Self.maxInputTokens)",
                    field: "inputTokens"
                )
            }
        }
        if let contextTokens {
            guard (1...Self.maxInputTokens).contains(contextTokens) else {
                throw EdgePlanError.invalidInput(
                    "context must be within 1...\(Self.maxInputTokens) tokens (got \(contextTokens))",
                    field: "contextTokens"
                )
            }
        }
        if let minAccuracy {
            guard minAccuracy.isFinite, (0...1).contains(minAccuracy) else {
                throw EdgePlanError.invalidInput(
                    "minimum accuracy must be within 0...1 (got \(minAccuracy))",
                    field: "minAccuracy"
                )
            }
        }
    }
}
