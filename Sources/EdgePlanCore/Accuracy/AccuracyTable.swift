/// How the length of a reasoning chain is controlled (Section V).
public enum LengthMode: String, Sendable, CaseIterable, Hashable, Codable {
    /// Unconstrained reasoning.
    case base
    /// The prompt asks for about N words; no cut-off.
    case soft
    /// The prompt asks for N words and the engine stops at N tokens.
    case hard
    /// A finished thinking block is injected so the model answers at once.
    case noReasoning = "no-reasoning"
    /// A non-reasoning model answering directly.
    case direct
    /// The model thinks up to N tokens; then the engine closes the thinking section and the model answers. The
    /// engine enforces it (llama-server's `reasoning_budget_tokens`, vLLM's `thinking_token_budget`); the answer
    /// after the forced end tag is not capped.
    case thinkingBudget = "thinking-budget"

    /// Whether the engine enforces the token budget as `max_tokens`.
    public var capsOutput: Bool { self == .hard }

    /// Tokens allowed for the answer after a forced end of thinking: a thinking-budget run stops at its budget
    /// plus these.
    public static let answerAllowanceTokens = 64

    /// The most tokens a run of this mode at `budget` produces, or nil when nothing bounds it.
    public func lengthCap(budget: Int?, capped: Bool) -> Int? {
        guard let budget else { return nil }
        if capped { return budget }
        return self == .thinkingBudget ? budget + Self.answerAllowanceTokens : nil
    }
}

/// One measured point: a model variant in a mode at a budget, its accuracy and mean output length.
public struct AccuracyRecord: Sendable, Equatable {
    public var variant: VariantID
    public var mode: LengthMode
    /// The token budget of `soft` and `hard` modes (and a capped `no-reasoning`); nil when unconstrained.
    public var budgetTokens: Int?
    /// Whether the engine cut generation at ``budgetTokens``.
    public var capped: Bool
    /// Fraction correct, 0...1.
    public var accuracy: Double
    public var meanOutputTokens: Double
    /// The measured mean end-to-end latency per question, when the source gives one.
    public var meanLatencyS: Double?
    public var source: String

    public init(
        variant: VariantID,
        mode: LengthMode,
        budgetTokens: Int?,
        capped: Bool,
        accuracy: Double,
        meanOutputTokens: Double,
        meanLatencyS: Double? = nil,
        source: String
    ) {
        self.variant = variant
        self.mode = mode
        self.budgetTokens = budgetTokens
        self.capped = capped
        self.accuracy = accuracy
        self.meanOutputTokens = meanOutputTokens
        self.meanLatencyS = meanLatencyS
        self.source = source
    }
}

/// The measured accuracy of every variant and mode on one task class.
public struct AccuracyTable: Sendable, Equatable {
    public var task: String
    public var description: String
    public var source: String
    /// Typical prompt length of the task, used when a request gives none.
    public var typicalInputTokens: Int
    /// Distinct answers a question has: 4 for multiple choice; free-form tasks give how many distinct wrong
    /// answers votes effectively split over. Majority voting depends on it.
    public var answerOptions: Int
    /// Questions behind each row: how much evidence one measured accuracy is.
    public var questions: Int
    public var records: [AccuracyRecord]

    public init(
        task: String,
        description: String,
        source: String,
        typicalInputTokens: Int,
        answerOptions: Int,
        questions: Int,
        records: [AccuracyRecord]
    ) {
        self.task = task
        self.description = description
        self.source = source
        self.typicalInputTokens = typicalInputTokens
        self.answerOptions = answerOptions
        self.questions = questions
        self.records = records
    }
}
