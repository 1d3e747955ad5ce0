import EdgePlanCore
import Foundation

/// Measures a model on a running engine, point by point of a ``SweepDesign``, and appends each point's records to
/// a JSON-lines trace that `calibrate` reads.
///
/// Each point's lines are written with one `write` and made durable with `fsync` before the next point starts, so a
/// collection stopped at any moment (Ctrl-C, SIGKILL, a time budget) loses at most the point it was measuring: run
/// again, it reads the trace, drops a line cut short, and measures only the points the trace lacks.
public struct ProfileCollector: Sendable {
    public var client: EngineClient
    public var design: SweepDesign
    public var context: CollectedTrace.Context
    public var architecture: CollectedTrace.Architecture
    public var tracePath: String
    /// Stop starting new points once this much time has passed (seconds); nil runs the whole design.
    public var timeBudgetS: Double?
    /// Seconds of idle power to sample before the sweep (only with rails).
    public var idleS: Double = 5
    /// Energy in joules between two monotonic times, from the power rails; nil without rails or samples.
    public var energy: @Sendable (Double, Double) -> Double?
    /// The monotonic clock the rails share (seconds).
    public var now: @Sendable () -> Double
    /// How long to wait after a run before its energy is attributed: the rails' next sample must be past the end of
    /// the run's window (a few sampling intervals; 0 without rails).
    public var energySettleS: Double = 0
    /// The vocabulary prompts are drawn from (token ids), kept clear of control tokens.
    public var promptTokenRange: Range<Int>
    /// The engine's slots, recorded with each concurrency point.
    public var slots: Int?

    public init(
        client: EngineClient,
        design: SweepDesign,
        context: CollectedTrace.Context,
        architecture: CollectedTrace.Architecture,
        tracePath: String,
        promptTokenRange: Range<Int>,
        energy: @escaping @Sendable (Double, Double) -> Double?,
        now: @escaping @Sendable () -> Double
    ) {
        self.client = client
        self.design = design
        self.context = context
        self.architecture = architecture
        self.tracePath = tracePath
        self.promptTokenRange = promptTokenRange
        self.energy = energy
        self.now = now
    }

    public struct Summary: Sendable {
        public var measured: Int
        public var skipped: Int
        public var remaining: Int
        public var deviceTimeS: Double
        public var stoppedByBudget: Bool
        public var warnings: [String]
        /// Points the engine failed, not recorded: a later collect measures them again.
        public var failed: [String] = []
    }

    /// Points failed in a row after which the sweep stops: the engine is gone, or refuses everything.
    public static let maxConsecutiveFailures = 3

    /// Runs the points the trace lacks. `progress(done, total, key)` is called after each.
    public func run(progress: @Sendable (Int, Int, String) -> Void = { _, _, _ in }) async throws -> Summary {
        let trace = try TraceFile(path: tracePath)
        let existing = try CollectedTrace.progress(trace.wholeLines, file: tracePath)
        if let model = existing.model, model != context.model {
            throw EdgePlanError.invalidFile(
                "this trace measures \(model), not \(context.model): give another -o",
                file: tracePath
            )
        }
        if !existing.done.contains("model") {
            try trace.append(
                CollectedTrace.modelLine(architecture, context: context, time: Date().timeIntervalSince1970)
            )
        }
        var warnings: [String] = []
        if !existing.done.contains("idle"), idleS > 0 {
            // The rails' first samples must be in before the window opens, or it is not covered.
            try await Task.sleep(for: .milliseconds(250))
            let start = now()
            try await Task.sleep(for: .milliseconds(Int(idleS * 1000)))
            let end = now()
            try await settle()
            if let joules = energy(start, end) {
                try trace.append(
                    CollectedTrace.idleLine(
                        model: context.model,
                        powerW: joules / (end - start),
                        seconds: end - start,
                        time: Date().timeIntervalSince1970
                    )
                )
            } else {
                warnings.append("the rails did not cover the idle window: no idle power recorded")
            }
        }
        let remaining = design.remaining(after: existing.done)
        let started = now()
        var measured = 0
        var deviceTime = 0.0
        var failed: [String] = []
        var failedInARow = 0
        for (index, point) in remaining.enumerated() {
            try Task.checkCancellation()
            if let budget = timeBudgetS, now() - started >= budget {
                return Summary(
                    measured: measured,
                    skipped: design.points.count - remaining.count,
                    remaining: remaining.count - index,
                    deviceTimeS: deviceTime,
                    stoppedByBudget: true,
                    warnings: warnings,
                    failed: failed
                )
            }
            let pointStart = now()
            if point.phase == .concurrent || point.phase == .interference {
                // One failed point does not end the sweep: it is recorded as empty, and the sweep goes on.
                var record: JSONValue?
                var warning: String?
                do { (record, warning) = try await measureConcurrency(point) } catch let error as EngineError {
                    warning = "\(point.key): \(error.description)"
                }
                deviceTime += now() - pointStart
                if let warning { warnings.append(warning) }
                try trace.append(
                    CollectedTrace.concurrencyLine(
                        point: point,
                        record: record,
                        context: context,
                        time: Date().timeIntervalSince1970
                    )
                )
                measured += 1
                progress(design.points.count - remaining.count + index + 1, design.points.count, point.key)
                continue
            }
            // One failed point does not end the sweep: it is not recorded, so that a later collect measures it
            // again, and the sweep goes on; a few in a row mean the engine is gone or refuses everything.
            let measurements: [CollectedTrace.Measurement]
            let warning: String?
            do {
                (measurements, warning) = try await measure(point)
                failedInARow = 0
            } catch let error as EngineError {
                deviceTime += now() - pointStart
                failed.append(point.key)
                failedInARow += 1
                warnings.append("\(point.key) failed and is not recorded (a later collect measures it again): \(error)")
                if failedInARow >= Self.maxConsecutiveFailures {
                    throw EngineError(
                        error.code,
                        "the engine failed \(failedInARow) points in a row (\(failed.suffix(failedInARow).joined(separator: ", "))); the sweep stopped, the \(measured) points measured are kept, and collect resumes from here. The last failure: \(error.message)",
                        request: error.request
                    )
                }
                progress(design.points.count - remaining.count + index + 1, design.points.count, point.key)
                continue
            }
            deviceTime += now() - pointStart
            if let warning { warnings.append(warning) }
            try trace.append(
                CollectedTrace.lines(
                    point: point,
                    measurements: measurements,
                    context: context,
                    time: Date().timeIntervalSince1970
                )
            )
            measured += 1
            progress(design.points.count - remaining.count + index + 1, design.points.count, point.key)
        }
        return Summary(
            measured: measured,
            skipped: design.points.count - remaining.count,
            remaining: 0,
            deviceTimeS: deviceTime,
            stoppedByBudget: false,
            warnings: warnings,
            failed: failed
        )
    }

    func settle() async throws {
        if energySettleS > 0 { try await Task.sleep(for: .milliseconds(Int(energySettleS * 1000))) }
    }

    /// A prompt of exactly `count` token ids, different for every point (so no cache can serve it).
    func prompt(_ count: Int, seed: String) -> [Int] {
        var generator = SplitMix64(seed: UInt64(truncatingIfNeeded: seed.hashValue &* 31 &+ count))
        let width = UInt64(max(1, promptTokenRange.count))
        return (0..<count).map { _ in promptTokenRange.lowerBound + Int(generator.next() % width) }
    }

    /// One request of a concurrency point, timed on the shared monotonic clock: when it was sent and its completion.
    struct Timed: Sendable {
        var sentAt: Double
        var completion: EngineClient.Completion
        /// Chunk arrivals of its only sample, on the shared clock.
        var arrivals: [Double] { completion.samples.first.map { $0.chunkTimesS.map { sentAt + $0 } } ?? [] }
    }

    /// Sends one request and times it on the shared monotonic clock.
    func timed(_ request: EngineClient.Request) async throws -> Timed {
        let sent = now()
        return Timed(sentAt: sent, completion: try await client.complete(request))
    }

    /// A request as plans send them (temperature 0.6, top-p 0.95), of a fixed length, on a prompt of its own.
    func planLike(_ point: SweepDesign.Point, index: Int, seed: String, input: Int, output: Int) -> EngineClient.Request
    {
        .init(
            prompt: .tokens(prompt(input, seed: seed + "/\(index)")),
            maxTokens: output,
            temperature: 0.6,
            seed: 11 + index,
            fixedLength: true,
            freshPrompt: true,
            extra: [("top_p", .number(0.95))]
        )
    }

    /// A concurrency point: `parallel` requests with prompts of their own decoding at once (the step time while all of
    /// them decode, the power, and, alone, the request's fixed cost), or a prompt arriving mid-decode (interference).
    func measureConcurrency(_ point: SweepDesign.Point) async throws -> (JSONValue?, String?) {
        let seed = point.key + "\(Date().timeIntervalSince1970)"
        if point.phase == .interference {
            let decodeInput = 128
            async let decode = timed(
                planLike(point, index: 0, seed: seed, input: decodeInput, output: point.outputTokens)
            )
            // The prompt arrives once the decode is under way: a quarter of its predicted run is not known here, so
            // after its first tokens have surely streamed (a fixed wait, checked against its arrivals below).
            try await Task.sleep(for: .milliseconds(300))
            let promptSent = now()
            let prefill = try await client.complete(
                .init(prompt: .tokens(prompt(point.inputTokens, seed: seed + "/p")), maxTokens: 1, freshPrompt: true)
            )
            let promptDone = promptSent + prefill.totalS
            let decoded = try await decode
            let arrivals = decoded.arrivals
            let inside = arrivals.filter { $0 > promptSent && $0 <= promptDone }.count
            let gaps = zip(arrivals.dropFirst(), arrivals).map { $0 - $1 }.filter { $0 > 0 }.sorted()
            guard gaps.count >= 8, let first = arrivals.first, let last = arrivals.last, first < promptSent,
                last > promptDone
            else {
                return (nil, "the prompt did not arrive mid-decode; no interference recorded")
            }
            let baseline = gaps[gaps.count / 2]
            let window = promptDone - promptSent
            let slowdown = max(0, window / Double(max(inside, 1)) / baseline - 1)
            return (
                .fields([
                    "prompt_tokens": .int(prefill.samples.first?.timings?.promptTokens ?? point.inputTokens),
                    "window_s": .number(window), "steps_inside": .int(inside), "baseline_step_s": .number(baseline),
                    "interference": .number(slowdown),
                ]), nil
            )
        }
        let runs = try await withThrowingTaskGroup(of: Timed.self) { group in
            for index in 0..<point.parallel {
                group.addTask {
                    try await timed(
                        planLike(point, index: index, seed: seed, input: point.inputTokens, output: point.outputTokens)
                    )
                }
            }
            var runs: [Timed] = []
            for try await run in group { runs.append(run) }
            return runs
        }
        try await settle()
        let streams = runs.map(\.arrivals)
        guard streams.allSatisfy({ $0.count >= 2 }) else {
            return (
                nil,
                "\(point.key): \(streams.filter { $0.count >= 2 }.count) of \(point.parallel) requests streamed tokens"
            )
        }
        // The window in which every request decodes: after the last first token, before the first last token.
        let start = streams.map { $0[0] }.max()!
        let end = streams.map { $0.last! }.min()!
        let trusted = runs.allSatisfy(\.completion.chunkTimesTrusted)
        var fields: [(String, JSONValue)] = []
        if trusted, end > start {
            let steps = streams.map { stream in stream.filter { $0 > start && $0 <= end }.count }.sorted()
            let median = steps[steps.count / 2]
            guard median >= 8 else {
                return (nil, "\(point.key): the requests decoded together for only \(median) steps")
            }
            fields += [
                ("step_s", .number((end - start) / Double(median))), ("steps", .int(median)),
                ("window_s", .number(end - start)), ("timing", .string("client")),
            ]
            if let joules = energy(start, end) { fields.append(("avg_power_w", .number(joules / (end - start)))) }
        } else {
            // A buffered stream: the engine's own per-token time, which covers each request's whole decode.
            let perToken = runs.compactMap { run -> Double? in
                guard let timings = run.completion.samples.first?.timings, timings.predictedTokens > 1 else {
                    return nil
                }
                return timings.predictedMS / 1000 / Double(timings.predictedTokens)
            }.sorted()
            guard !perToken.isEmpty else {
                return (nil, "\(point.key): the streams came in bursts and the engine reports no timings")
            }
            fields += [("step_s", .number(perToken[perToken.count / 2])), ("timing", .string("engine"))]
        }
        if point.parallel == 1, let run = runs.first, let timings = run.completion.samples.first?.timings {
            // What the client waits beyond the engine's own prompt and decode time: the request's fixed cost.
            let overhead = run.completion.totalS - (timings.promptMS + timings.predictedMS) / 1000
            fields += [
                ("overhead_s", .number(max(0, overhead))), ("prompt_s", .number(timings.promptMS / 1000)),
                ("total_s", .number(run.completion.totalS)), ("output_tokens", .int(timings.predictedTokens)),
            ]
        }
        if let slots { fields.append(("engine_slots", .int(slots))) }
        return (.object(fields), nil)
    }

    func measure(_ point: SweepDesign.Point) async throws -> ([CollectedTrace.Measurement], String?) {
        let seed = point.key + "\(Date().timeIntervalSince1970)"
        switch point.phase {
        case .warmup:
            _ = try await client.complete(
                planLike(point, index: 0, seed: seed, input: point.inputTokens, output: point.outputTokens)
            )
            return ([], nil)
        case .prefill:
            let sent = now()
            let completion = try await client.complete(
                .init(prompt: .tokens(prompt(point.inputTokens, seed: seed)), maxTokens: 1, freshPrompt: true)
            )
            try await settle()
            guard let sample = completion.samples.first else { return ([], "\(point.key): no sample came back") }
            if let timings = sample.timings, timings.cachedTokens > 0 {
                throw EngineError(
                    .unsupported,
                    "the engine served \(timings.cachedTokens) prompt tokens from its cache in a prefill measurement",
                    request: point.key
                )
            }
            let firstS = sample.chunkTimesS.first ?? completion.totalS
            let energyJ = energy(sent, sent + firstS)
            if let timings = sample.timings, timings.promptTokens > 0 {
                return (
                    [
                        .init(
                            phase: .prefill,
                            inputTokens: timings.promptTokens,
                            outputTokens: 0,
                            batch: 1,
                            latencyS: timings.promptMS / 1000,
                            energyJ: energyJ.map { $0 * (timings.promptMS / 1000) / firstS },
                            timing: "engine"
                        )
                    ], nil
                )
            }
            return (
                [
                    .init(
                        phase: .prefill,
                        inputTokens: completion.promptTokens ?? point.inputTokens,
                        outputTokens: 0,
                        batch: 1,
                        latencyS: firstS - completion.headS / 2,
                        energyJ: energyJ,
                        timing: "client"
                    )
                ], nil
            )
        case .concurrent, .interference:
            return ([], nil)
        case .decode, .parallel:
            // Sampled as plans of that k run (one sample greedy; k samples at temperature 0.6 and top-p 0.95, as
            // EngineRequest shapes them): sampling over the vocabulary costs time per token.
            var request = planLike(point, index: 0, seed: seed, input: point.inputTokens, output: point.outputTokens)
            request.samples = point.parallel
            if point.parallel == 1 {
                request.temperature = 0
                request.extra = []
            }
            let sent = now()
            let completion = try await client.complete(request)
            try await settle()
            // The latency the client saw, beside the engine's own prompt and decode time (its slowest sample).
            let engineS = completion.samples.compactMap(\.timings).map { ($0.promptMS + $0.predictedMS) / 1000 }.max()
            let requestS = engineS.map { _ in completion.totalS }
            let samples = completion.samples.filter { !$0.chunkTimesS.isEmpty }
            guard samples.count == point.parallel else {
                return ([], "\(point.key): \(samples.count) of \(point.parallel) samples streamed tokens")
            }
            let input = completion.promptTokens ?? point.inputTokens
            if point.phase == .parallel {
                // All k samples decode together: from the first token of any to the last token of all.
                let first = samples.map { $0.chunkTimesS[0] }.min()!
                let last = samples.map { $0.chunkTimesS.last! }.max()!
                let tokens = samples.map(\.outputTokens).min()!
                guard tokens > 1, last > first else { return ([], "\(point.key): too few tokens to time") }
                return (
                    [
                        .init(
                            phase: .decode,
                            inputTokens: input,
                            outputTokens: tokens - 1,
                            batch: point.parallel,
                            latencyS: last - first,
                            energyJ: energy(sent + first, sent + last),
                            timing: "client",
                            requestS: requestS,
                            engineS: engineS
                        )
                    ], nil
                )
            }
            let sample = samples[0]
            let times = sample.chunkTimesS
            if !completion.chunkTimesTrusted || times.count < 2 {
                // A buffered stream: only the engine's own total is a measurement.
                guard let timings = sample.timings, timings.predictedTokens > 1 else {
                    return (
                        [],
                        "\(point.key): the stream came in bursts (\(completion.burstChunks) of \(completion.chunks) chunks) and the engine reports no timings; nothing recorded"
                    )
                }
                return (
                    [
                        .init(
                            phase: .decode,
                            inputTokens: input,
                            outputTokens: timings.predictedTokens - 1,
                            batch: 1,
                            latencyS: timings.predictedMS / 1000 * Double(timings.predictedTokens - 1)
                                / Double(timings.predictedTokens),
                            energyJ: nil,
                            timing: "engine"
                        )
                    ],
                    "\(point.key): the stream came in bursts; the engine's total time recorded instead of per-token times"
                )
            }
            var records: [CollectedTrace.Measurement] = []
            for checkpoint in design.decodeCheckpoints where checkpoint < times.count {
                records.append(
                    .init(
                        phase: .decode,
                        inputTokens: input,
                        outputTokens: checkpoint,
                        batch: 1,
                        latencyS: times[checkpoint] - times[0],
                        energyJ: energy(sent + times[0], sent + times[checkpoint]),
                        timing: "client"
                    )
                )
            }
            if !records.isEmpty {
                records[records.count - 1].requestS = requestS
                records[records.count - 1].engineS = engineS
            }
            let warning =
                times.count < point.outputTokens
                ? "\(point.key): the engine stopped at \(times.count) of \(point.outputTokens) tokens" : nil
            return (records, warning)
        }
    }
}

/// An append-only trace file: whole lines only, each append made durable before it returns.
final class TraceFile: @unchecked Sendable {
    let path: String
    let wholeLines: [UInt8]
    private let handle: FileHandle

    init(path: String) throws {
        self.path = path
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty { try manager.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            guard manager.createFile(atPath: path, contents: nil) else {
                throw EdgePlanError(.io, "cannot create the trace", file: path)
            }
        }
        guard let data = manager.contents(atPath: path), let handle = FileHandle(forUpdatingAtPath: path) else {
            throw EdgePlanError(.io, "cannot open the trace for appending", file: path)
        }
        let bytes = Array(data)
        let whole = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        wholeLines = Array(bytes[..<whole])
        self.handle = handle
        // A line cut short by a crash is dropped: its point is measured again.
        if whole < bytes.count { try handle.truncate(atOffset: UInt64(whole)) }
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    func append(_ bytes: [UInt8]) throws {
        do {
            try handle.write(contentsOf: Data(bytes))
            try handle.synchronize()
        } catch {
            throw EdgePlanError(.io, "cannot append to the trace: \(error)", file: path)
        }
    }
}
