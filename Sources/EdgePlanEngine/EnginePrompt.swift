import AsyncHTTPClient
import EdgePlanCore
import NIOCore
import NIOHTTP1

/// What a running engine says of its own limits: llama-server's `/props`.
public struct EngineLimits: Sendable, Equatable {
    /// Sequences it decodes at once (llama-server's slots, `-np`).
    public var slots: Int?
    /// Context of one sequence in tokens (a slot's `n_ctx`: `-c` divided by the slots): a prompt and its `max_tokens`
    /// must fit in it, or the engine refuses the request (HTTP 400) or stops it when the slot is full.
    public var contextPerSlot: Int?
    /// The model file it serves, when it names one.
    public var modelPath: String?

    public init(slots: Int? = nil, contextPerSlot: Int? = nil, modelPath: String? = nil) {
        self.slots = slots
        self.contextPerSlot = contextPerSlot
        self.modelPath = modelPath
    }

    /// Reads `/props`: `total_slots`, `default_generation_settings.n_ctx` and `model_path`.
    public init(props: JSONValue) {
        slots = props["total_slots"]?.intValue
        contextPerSlot = props["default_generation_settings"]?["n_ctx"]?.intValue ?? props["n_ctx"]?.intValue
        modelPath = props["model_path"]?.stringValue
    }
}

/// A prompt's length as the engine counts it, and how it was counted.
public struct PromptCount: Sendable, Equatable {
    public enum Source: String, Sendable {
        /// The engine's chat template applied (`/apply-template`), then its tokenizer (`/tokenize`).
        case templated
        /// The engine's tokenizer on a chat request's messages (vLLM's `/tokenize`).
        case tokenized
        /// No tokenizer on the engine: the prompt's UTF-8 bytes / 4, which text in other scripts or code exceeds.
        case estimated
    }

    public var tokens: Int
    public var source: Source
}

extension EngineClient {
    /// The engine's slots and context per slot, or empty limits for an engine without `/props`.
    public func limits(timeout: Duration = .seconds(5)) async throws -> EngineLimits {
        guard let props = try await getJSON("/props", timeout: timeout) else { return EngineLimits() }
        return EngineLimits(props: props)
    }

    /// The tokens of a chat request's messages as the engine will see them: its chat template applied, then its
    /// tokenizer with the special tokens it adds. An engine with neither endpoint gets an estimate, marked so.
    public func countPrompt(
        messages: [(role: String, content: String)],
        timeout: Duration = .seconds(10)
    ) async throws -> PromptCount {
        let list = JSONValue.array(
            messages.map { .fields(["role": .string($0.role), "content": .string($0.content)]) }
        )
        // llama-server: the template, then the tokenizer, as its chat endpoint does (special tokens added and parsed).
        if let templated = try await postJSON("/apply-template", .fields(["messages": list]), timeout: timeout),
            let prompt = templated["prompt"]?.stringValue,
            let tokenized = try await postJSON(
                "/tokenize",
                .fields(["content": .string(prompt), "add_special": .bool(true), "parse_special": .bool(true)]),
                timeout: timeout
            ),
            case let .array(tokens)? = tokenized["tokens"]
        {
            return PromptCount(tokens: tokens.count, source: .templated)
        }
        // vLLM: one call with the messages.
        if let tokenized = try await postJSON(
            "/tokenize",
            .fields(["model": .string(model), "messages": list]),
            timeout: timeout
        ) {
            if let count = tokenized["count"]?.intValue { return PromptCount(tokens: count, source: .tokenized) }
            if case let .array(tokens)? = tokenized["tokens"] {
                return PromptCount(tokens: tokens.count, source: .tokenized)
            }
        }
        let bytes = messages.reduce(0) { $0 + $1.content.utf8.count }
        return PromptCount(tokens: max(1, (bytes + 3) / 4), source: .estimated)
    }

    /// GETs `path` and parses its JSON; nil when the engine has no such endpoint (any 4xx) or answers no JSON.
    func getJSON(_ path: String, timeout: Duration) async throws -> JSONValue? {
        var request = HTTPClientRequest(url: endpoint.url(path: path))
        request.method = .GET
        return try await exchange(request, path: path, timeout: timeout)
    }

    /// POSTs a JSON body to `path` and parses the JSON answer; nil when the engine has no such endpoint (4xx).
    func postJSON(_ path: String, _ body: JSONValue, timeout: Duration) async throws -> JSONValue? {
        var request = HTTPClientRequest(url: endpoint.url(path: path))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body.utf8()))
        return try await exchange(request, path: path, timeout: timeout)
    }

    private func exchange(_ request: HTTPClientRequest, path: String, timeout: Duration) async throws -> JSONValue? {
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(
                request,
                timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
            )
            body = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw EngineError(
                .unreachable,
                "\(endpoint) does not answer: \(error)",
                request: "\(request.method.rawValue) \(path)"
            )
        }
        if (400..<500).contains(response.status.code) { return nil }
        guard response.status == .ok else {
            throw EngineError(
                .httpStatus,
                "\(endpoint) answered HTTP \(response.status.code): \(String(buffer: body).prefix(400))",
                request: "\(request.method.rawValue) \(path)"
            )
        }
        return try? JSONValue.parse(Array(buffer: body))
    }
}
