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

    /// Placeholder the scheduler replaces with the task's prompt.
    public static let promptPlaceholder = "{prompt}"

    /// Builds the body for `configuration`; `maxTokens` is the cap (hard modes) or the deadline guard.
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
        case .base, .direct:
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
    }
}
