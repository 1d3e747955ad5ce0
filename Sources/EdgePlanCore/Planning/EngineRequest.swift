/// The request body for an OpenAI-compatible chat endpoint (such as vLLM) that runs a configuration.
public struct EngineRequest: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public var role: String
        public var content: String
    }

    public var model: String
    public var messages: [Message]
    public var maxTokens: Int
    public var n: Int
    public var temperature: Double
    public var topP: Double
    /// True when the last message is an assistant prefix the engine must continue (no-reasoning mode).
    public var continueFinalMessage: Bool
    /// How to combine the `n` answers.
    public var aggregation: String
    /// The engine the body is for; its record decides how samples are drawn and the answer is prefilled.
    public var engine: EngineKind = .vllm
    /// Requests to send: 1 with `n` samples each, or `n` concurrent requests of one sample for an engine without `n`.
    public var requests: Int = 1
    /// The thinking budget the engine enforces, and the request field that carries it (thinking-budget mode).
    public struct ThinkingBudget: Sendable, Equatable {
        public var field: String
        public var tokens: Int
    }

    public var thinkingBudget: ThinkingBudget?
    /// Where to send it, from the policy's endpoints (nil: wherever the client was told).
    public var endpoint: String?

    /// Placeholder the scheduler replaces with the task's prompt.
    public static let promptPlaceholder = "{prompt}"

    /// The body for `configuration` on `engine`: the record says whether k samples go as `n` or as k requests, and
    /// whether a no-reasoning answer is prefilled with `continue_final_message` (vLLM, SGLang) or by ending the
    /// messages with the assistant's turn (llama-server prefills a final assistant message itself).
    public init(configuration: Configuration, variant: ModelVariant, maxTokens: Int, engine: EngineKind) {
        self.init(configuration: configuration, variant: variant, maxTokens: maxTokens)
        let record = EngineCapabilities.of(engine)
        self.engine = engine
        if record.sampling == .concurrentRequests && configuration.parallel > 1 {
            requests = configuration.parallel
            aggregation = "majority-vote over \(configuration.parallel) concurrent requests"
        }
        if continueFinalMessage && record.continueFinalMessageField == nil { continueFinalMessage = false }
        if configuration.mode == .thinkingBudget, let budget = configuration.budgetTokens,
            let field = record.thinkingBudgetField
        {
            thinkingBudget = ThinkingBudget(field: field, tokens: budget)
        }
    }

    /// Builds the body for `configuration`, shaped for vLLM (a thinking budget goes as its `thinking_token_budget`); `maxTokens` is the cap (hard modes) or the deadline guard.
    public init(configuration: Configuration, variant: ModelVariant, maxTokens: Int) {
        var user = Self.promptPlaceholder
        var messages: [Message] = []
        switch configuration.mode {
        case .soft, .hard:
            if let budget = configuration.budgetTokens {
                user += "\n\nKeep your reasoning within \(budget) words, then give the final answer."
            }
            messages = [Message(role: "user", content: user)]
        case .noReasoning:
            messages = [
                Message(role: "user", content: user),
                Message(role: "assistant", content: "<think>\nOkay, I think I have finished thinking.\n</think>\n\n"),
            ]
        case .base, .direct, .thinkingBudget:
            messages = [Message(role: "user", content: user)]
        }
        self.model = variant.engineModel
        self.messages = messages
        self.maxTokens = maxTokens
        self.n = configuration.parallel
        self.temperature = configuration.parallel > 1 ? 0.6 : 0.0
        self.topP = configuration.parallel > 1 ? 0.95 : 1.0
        self.continueFinalMessage = configuration.mode == .noReasoning
        self.aggregation = configuration.parallel > 1 ? "majority-vote" : "single"
        if configuration.mode == .thinkingBudget, let budget = configuration.budgetTokens,
            let field = EngineCapabilities.vllm.thinkingBudgetField
        {
            thinkingBudget = ThinkingBudget(field: field, tokens: budget)
        }
    }
}
