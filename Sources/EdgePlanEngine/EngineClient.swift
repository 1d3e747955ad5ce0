import AsyncHTTPClient
import EdgePlanCore
import Foundation
import NIOCore
import NIOHTTP1

/// A client of one OpenAI-compatible engine: streamed completions, every chunk timed on arrival with a monotonic
/// clock, `usage` and the engine's own `timings` read where it sends them.
///
/// What differs between engines comes from ``capabilities``: how k samples are drawn, which fields ask for a fixed
/// length or a fresh prompt cache. Connections are pooled by the shared HTTP client and reused across calls.
public struct EngineClient: Sendable {
    public let endpoint: EngineEndpoint
    public let capabilities: EngineCapabilities
    public let model: String
    let http: HTTPClient

    public init(endpoint: EngineEndpoint, capabilities: EngineCapabilities, model: String, http: HTTPClient = .shared) {
        self.endpoint = endpoint
        self.capabilities = capabilities
        self.model = model
        self.http = http
    }

    /// What to send: a prompt (token ids or text) and how to sample it.
    public struct Request: Sendable {
        public enum Prompt: Sendable {
            case tokens([Int])
            case text(String)
        }

        public var prompt: Prompt
        public var maxTokens: Int
        public var samples: Int
        public var temperature: Double
        public var seed: Int?
        /// Run to exactly `maxTokens` tokens (sweeps), through the engine's ignore-EOS or minimum-length field.
        public var fixedLength: Bool
        /// Keep an earlier prompt's KV cache out of this request (prefill sweeps).
        public var freshPrompt: Bool
        /// Fields added as they are (a grammar, a thinking budget).
        public var extra: [(String, JSONValue)]

        public init(
            prompt: Prompt,
            maxTokens: Int,
            samples: Int = 1,
            temperature: Double = 0,
            seed: Int? = nil,
            fixedLength: Bool = false,
            freshPrompt: Bool = false,
            extra: [(String, JSONValue)] = []
        ) {
            self.prompt = prompt
            self.maxTokens = maxTokens
            self.samples = samples
            self.temperature = temperature
            self.seed = seed
            self.fixedLength = fixedLength
            self.freshPrompt = freshPrompt
            self.extra = extra
        }

        var summary: String {
            let prompt =
                switch self.prompt {
                case let .tokens(ids): "\(ids.count) prompt tokens"
                case let .text(text): "a \(text.utf8.count)-byte prompt"
                }
            return "\(prompt), max_tokens \(maxTokens), \(samples) sample\(samples == 1 ? "" : "s")"
        }
    }

    /// The engine's own measurement of one completion (llama-server's `timings`).
    public struct Timings: Sendable, Equatable {
        public var promptTokens: Int
        public var promptMS: Double
        public var predictedTokens: Int
        public var predictedMS: Double
        public var cachedTokens: Int

        init?(_ value: JSONValue?) {
            guard let value, let promptMS = value["prompt_ms"]?.doubleValue,
                let predictedMS = value["predicted_ms"]?.doubleValue
            else { return nil }
            promptTokens = value["prompt_n"]?.intValue ?? 0
            self.promptMS = promptMS
            predictedTokens = value["predicted_n"]?.intValue ?? 0
            self.predictedMS = predictedMS
            cachedTokens = value["cache_n"]?.intValue ?? 0
        }
    }

    /// One sample as it streamed: its text, the arrival time of each chunk (seconds after the request was sent),
    /// and why it ended.
    public struct Sample: Sendable {
        public var text: String = ""
        /// The text of each chunk, in order: one token a chunk where the engine streams tokens, so the first B pieces
        /// are the output after B tokens.
        public var pieces: [String] = []
        public var chunkTimesS: [Double] = []
        public var finishReason: String?
        public var timings: Timings?

        /// The request's `max_tokens`, where the engine counted more than that for this sample.
        public var cappedAt: Int?

        /// Output tokens: the engine's count where it gives one, else one per content chunk; never past the cap.
        public var outputTokens: Int { min(timings?.predictedTokens ?? chunkTimesS.count, cappedAt ?? Int.max) }
    }

    public struct Completion: Sendable {
        public var samples: [Sample]
        public var promptTokens: Int?
        public var usageCompletionTokens: Int?
        /// Seconds from sending to the response's head, and to its last byte.
        public var headS: Double
        public var totalS: Double
        /// Chunks that arrived less than 0.2 ms after the one before: a server that buffered its stream.
        public var burstChunks: Int
        public var chunks: Int
        /// Whether the chunk times are the engine's pace, not a buffer's: fewer than a tenth of chunks in bursts.
        public var chunkTimesTrusted: Bool { chunks == 0 || Double(burstChunks) < 0.1 * Double(chunks) }
        /// Whether the run was cut off at a deadline: the samples hold what streamed until then.
        public var cut = false
        /// Whether it was stopped because the planner made it yield to a higher-priority run (not at its deadline).
        public var preempted = false
        /// For each sample the engine counted past `max_tokens`, by how many tokens (it is counted at the cap).
        public var overCap: [Int] = []

        /// Two concurrent requests' completions as one: every sample, the earliest head, the latest end.
        func merging(_ other: Completion) -> Completion {
            var combined = self
            combined.samples += other.samples
            combined.headS = min(headS, other.headS)
            combined.totalS = max(totalS, other.totalS)
            combined.burstChunks += other.burstChunks
            combined.chunks += other.chunks
            combined.usageCompletionTokens = (usageCompletionTokens ?? 0) + (other.usageCompletionTokens ?? 0)
            combined.cut = cut || other.cut
            combined.overCap += other.overCap
            return combined
        }
    }

    /// Runs one streamed completion on `/v1/completions`. k samples go as one request with `n` or as k concurrent
    /// requests, as the engine's record says. Cancelling the calling task closes the connection, which makes
    /// llama-server stop generating.
    public func complete(_ request: Request, timeout: Duration = .seconds(600)) async throws -> Completion {
        switch capabilities.sampling {
        case .n:
            return try await stream(request, n: request.samples, timeout: timeout)
        case .concurrentRequests:
            guard request.samples > 1 else { return try await stream(request, n: 1, timeout: timeout) }
            return try await withThrowingTaskGroup(of: Completion.self) { group in
                for index in 0..<request.samples {
                    var single = request
                    single.seed = request.seed.map { $0 + index }
                    group.addTask { try await stream(single, n: 1, timeout: timeout) }
                }
                var merged: Completion?
                for try await completion in group { merged = merged.map { $0.merging(completion) } ?? completion }
                return merged!
            }
        }
    }

    func body(_ request: Request, n: Int) throws -> [UInt8] {
        var fields: [(String, JSONValue)] = [("model", .string(model))]
        switch request.prompt {
        case let .tokens(ids):
            guard capabilities.tokenIDPrompts else {
                throw EngineError(
                    .unsupported,
                    "\(capabilities.kind.rawValue) takes no token-id prompts",
                    request: request.summary
                )
            }
            fields.append(("prompt", .array(ids.map { .int($0) })))
        case let .text(text):
            fields.append(("prompt", .string(text)))
        }
        fields += [
            (capabilities.maxTokensField, .int(request.maxTokens)), ("stream", .bool(true)),
            ("temperature", .number(request.temperature)),
        ]
        if n > 1 { fields.append(("n", .int(n))) }
        if let seed = request.seed { fields.append(("seed", .int(seed))) }
        if request.fixedLength {
            guard let fixed = capabilities.fixedLengthFields(request.maxTokens) else {
                throw EngineError(
                    .unsupported,
                    "\(capabilities.kind.rawValue) cannot be told to ignore the end of sequence",
                    request: request.summary
                )
            }
            fields += fixed
        }
        if request.freshPrompt { fields += capabilities.freshPromptFields }
        // Usage in the last chunk, where the engine supports the OpenAI option.
        fields.append(("stream_options", .fields(["include_usage": .bool(true)])))
        fields += request.extra
        return JSONValue.object(fields).utf8()
    }

    private func stream(_ request: Request, n: Int, timeout: Duration) async throws -> Completion {
        try await stream(
            path: "/v1/completions",
            body: try body(request, n: n),
            summary: request.summary,
            n: n,
            maxTokens: request.maxTokens,
            timeout: timeout,
            strictCap: true
        )
    }

    /// Runs a chat request body as it is (a plan's `request.body`, its prompt filled in), streamed: k samples through
    /// its `n`, or `requests` concurrent copies of it. Cancelling the calling task closes the connections, which makes
    /// llama-server stop generating. When `stop` returns before the run ends (its planner made it yield), the run is
    /// closed as at a deadline and marked preempted.
    public func chat(
        _ body: JSONValue,
        requests: Int = 1,
        deadline: Duration? = nil,
        timeout: Duration = .seconds(600),
        stop: (@Sendable () async -> Void)? = nil
    ) async throws -> Completion {
        var fields: [(String, JSONValue)] = []
        if case let .object(pairs) = body { fields = pairs.filter { $0.0 != "stream" && $0.0 != "stream_options" } }
        fields += [("stream", .bool(true)), ("stream_options", .fields(["include_usage": .bool(true)]))]
        let n = body["n"]?.intValue ?? 1
        let maxTokens = body[capabilities.maxTokensField]?.intValue ?? Int.max
        let summary =
            "chat, max_tokens \(maxTokens), \(n) sample\(n == 1 ? "" : "s")\(requests > 1 ? " x \(requests) requests" : "")"
        let bytes = JSONValue.object(fields).utf8()
        enum Outcome: Sendable {
            case completed(Completion)
            case deadline
            case stopped
            /// A deadline or stop watch that was called off: the run ended first.
            case calledOff
        }
        // The requests race the deadline: at the deadline they are cancelled (the connections close, and the
        // engine stops), and each returns what it streamed so far, marked cut.
        return try await withThrowingTaskGroup(of: Outcome.self) { group in
            for _ in 0..<max(1, requests) {
                group.addTask {
                    .completed(
                        try await stream(
                            path: "/v1/chat/completions",
                            body: bytes,
                            summary: summary,
                            n: n,
                            maxTokens: maxTokens,
                            timeout: timeout,
                            partialOnCancel: deadline != nil || stop != nil
                        )
                    )
                }
            }
            if let deadline {
                group.addTask {
                    try? await Task.sleep(for: deadline)
                    return Task.isCancelled ? .calledOff : .deadline
                }
            }
            if let stop {
                group.addTask {
                    await stop()
                    return Task.isCancelled ? .calledOff : .stopped
                }
            }
            var merged: Completion?
            var pending = max(1, requests)
            var stopped = false
            while pending > 0, let outcome = try await group.next() {
                switch outcome {
                case let .completed(completion):
                    merged = merged.map { $0.merging(completion) } ?? completion
                    pending -= 1
                case .deadline:
                    group.cancelAll()
                case .stopped:
                    stopped = true
                    group.cancelAll()
                case .calledOff:
                    break
                }
            }
            group.cancelAll()
            if stopped, merged!.cut {
                merged!.cut = false
                merged!.preempted = true
            }
            return merged!
        }
    }

    private func stream(
        path: String,
        body: [UInt8],
        summary: String,
        n: Int,
        maxTokens: Int,
        timeout: Duration,
        partialOnCancel: Bool = false,
        strictCap: Bool = false
    ) async throws -> Completion {
        var http = HTTPClientRequest(url: endpoint.url(path: path))
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        http.headers.add(name: "Accept", value: "text/event-stream")
        http.body = .bytes(ByteBuffer(bytes: body))
        let clock = ContinuousClock()
        let sent = clock.now
        func seconds(_ instant: ContinuousClock.Instant) -> Double {
            let elapsed = instant - sent
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        }
        var completion = Completion(
            samples: Array(repeating: Sample(), count: n),
            headS: 0,
            totalS: 0,
            burstChunks: 0,
            chunks: 0
        )
        func cutShort() -> Completion {
            completion.cut = true
            completion.totalS = seconds(clock.now)
            return completion
        }
        var response: HTTPClientResponse?
        // A pooled connection the engine closed while idle fails before anything was sent: try a fresh one. Nothing
        // ran on the engine, so the retry measures nothing twice.
        for attempt in 0..<3 where response == nil {
            do {
                response = try await self.http.execute(
                    http,
                    timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
                )
            } catch let error as HTTPClientError where error == .remoteConnectionClosed && attempt < 2 {
                continue
            } catch let error as ChannelError where error == .ioOnClosedChannel && attempt < 2 {
                continue
            } catch {
                // Cut before any answer came (the engine queued the request): the run missed its deadline all the same.
                if partialOnCancel && Task.isCancelled { return cutShort() }
                throw EngineError(.unreachable, "\(endpoint) does not answer: \(error)", request: summary)
            }
        }
        guard let response else {
            throw EngineError(.unreachable, "\(endpoint) closed every connection", request: summary)
        }
        let headS = seconds(clock.now)
        guard response.status == .ok else {
            let body = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            throw EngineError(
                .httpStatus,
                "\(endpoint) answered HTTP \(response.status.code): \(body.prefix(400))",
                request: summary
            )
        }
        var events = ServerSentEvents()
        completion.headS = headS
        var lastChunkS: Double?
        var finished: [Int] = []
        func handle(_ payload: [UInt8], at time: Double) throws {
            // The end of the stream; what it ends is judged by the samples' finish reasons and counts.
            if payload == Array("[DONE]".utf8) { return }
            let event: JSONValue
            do { event = try JSONValue.parse(payload) } catch {
                throw EngineError(
                    .malformedStream,
                    "\(endpoint) streamed a line that is not JSON: \(String(decoding: payload.prefix(200), as: UTF8.self))",
                    request: summary
                )
            }
            if let message = event["error"]?["message"]?.stringValue ?? event["error"]?.stringValue {
                throw EngineError(.httpStatus, "\(endpoint) reported an error mid-stream: \(message)", request: summary)
            }
            if let usage = event["usage"], usage != .null {
                completion.promptTokens = usage["prompt_tokens"]?.intValue ?? completion.promptTokens
                completion.usageCompletionTokens =
                    usage["completion_tokens"]?.intValue ?? completion.usageCompletionTokens
            }
            guard case let .array(choices)? = event["choices"] else {
                if event["usage"] == nil && event["timings"] == nil {
                    throw EngineError(
                        .malformedStream,
                        "\(endpoint) streamed an event without choices: \(String(decoding: payload.prefix(200), as: UTF8.self))",
                        request: summary
                    )
                }
                return
            }
            for choice in choices {
                let index = choice["index"]?.intValue ?? 0
                guard completion.samples.indices.contains(index) else {
                    throw EngineError(
                        .malformedStream,
                        "\(endpoint) streamed choice \(index) of a request for \(n)",
                        request: summary
                    )
                }
                let text = choice["text"]?.stringValue ?? choice["delta"]?["content"]?.stringValue ?? ""
                // A chat stream opens each choice with a chunk that names the role and carries no token.
                let delta = choice["delta"]
                let roleOnly =
                    delta?["role"] != nil && text.isEmpty
                    && (delta?["reasoning_content"]?.stringValue ?? "").isEmpty
                if !roleOnly && (!text.isEmpty || choice["finish_reason"] == nil || choice["finish_reason"] == .null) {
                    completion.samples[index].text += text
                    completion.samples[index].pieces.append(text)
                    completion.samples[index].chunkTimesS.append(time)
                    completion.chunks += 1
                    if let last = lastChunkS, time - last < 0.0002 { completion.burstChunks += 1 }
                    lastChunkS = time
                }
                if let reason = choice["finish_reason"]?.stringValue {
                    completion.samples[index].finishReason = reason
                    finished.append(index)
                }
            }
            if let timings = Timings(event["timings"]) {
                // With usage asked for, llama-server sends each choice's timings in a chunk of its own, without
                // choices, right after that choice's last chunk: they belong to the choice that finished last
                // without timings of its own.
                let index: Int =
                    if case let .array(choices)? = event["choices"], let first = choices.first {
                        first["index"]?.intValue ?? 0
                    } else {
                        finished.last {
                            completion.samples.indices.contains($0) && completion.samples[$0].timings == nil
                        }
                            ?? 0
                    }
                if completion.samples.indices.contains(index) { completion.samples[index].timings = timings }
            }
        }
        do {
            for try await buffer in response.body {
                let time = seconds(clock.now)
                for payload in events.feed(buffer.readableBytesView) { try handle(payload, at: time) }
            }
        } catch let error as EngineError {
            throw error
        } catch  where partialOnCancel && Task.isCancelled {
            return cutShort()
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw EngineError(.unreachable, "\(endpoint) broke off the stream: \(error)", request: summary)
        }
        if partialOnCancel && Task.isCancelled { return cutShort() }
        for payload in events.finish() { try handle(payload, at: seconds(clock.now)) }
        completion.totalS = seconds(clock.now)
        // The streamed chunk of a special token carries no text; the engine's count is the one to trust. In a plan's
        // run (`chat`), a count past the cap never throws the run away: the sample ran to its cap, its answer is
        // kept, its length is the cap, and the excess is noted. A measurement (`complete`) of another length than
        // asked is the engine's fault, and says so.
        for index in completion.samples.indices where completion.samples[index].outputTokens > maxTokens {
            // A measurement cannot use a run of another length than asked: there the engine is at fault.
            if strictCap {
                throw EngineError(
                    .ignoredMaxTokens,
                    "\(endpoint) returned \(completion.samples[index].outputTokens) tokens for max_tokens \(maxTokens)",
                    request: summary
                )
            }
            completion.overCap.append(completion.samples[index].outputTokens - maxTokens)
            completion.samples[index].cappedAt = maxTokens
        }
        return completion
    }

    /// Checks that the engine answers at all, within `timeout`: `GET /v1/models`. (A request to an engine that is
    /// down waits out its whole timeout while the connection pool retries; this names it at once.)
    public func checkReachable(timeout: Duration = .seconds(3)) async throws {
        var request = HTTPClientRequest(url: endpoint.url(path: "/v1/models"))
        request.method = .GET
        do {
            let response = try await http.execute(
                request,
                timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
            )
            _ = try await response.body.collect(upTo: 16 << 20)
        } catch {
            throw EngineError(.unreachable, "\(endpoint) does not answer: \(error)", request: "GET /v1/models")
        }
    }

    /// What the engine says about itself: `/props` (llama-server) and `/v1/models`.
    public func describe() async throws -> JSONValue {
        var fields: [(String, JSONValue)] = []
        for path in ["/v1/models", "/props"] {
            var request = HTTPClientRequest(url: endpoint.url(path: path))
            request.method = .GET
            do {
                let response = try await http.execute(request, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 16 << 20)
                if response.status == .ok, let value = try? JSONValue.parse(Array(buffer: body)) {
                    fields.append((path, value))
                }
            } catch {
                throw EngineError(.unreachable, "\(endpoint) does not answer: \(error)", request: "GET \(path)")
            }
        }
        return .object(fields)
    }
}
