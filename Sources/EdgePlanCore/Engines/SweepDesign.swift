/// What `profile collect` measures on an engine, point by point, following the paper's method (idle power, a
/// prefill sweep over padded input buckets, decode timed per token, parallel scaling) with fewer runs: one
/// streamed run per input length yields the decode time at every output length up to its cap, where the paper ran
/// one request per output length.
///
/// Each point has a stable ``SweepDesign/Point/key``: a collection that stops resumes by skipping the keys its trace
/// file already holds.
public struct SweepDesign: Sendable, Equatable {
    public enum Phase: String, Sendable, Equatable {
        case warmup
        case prefill
        case decode
        case parallel
        /// `parallel` separate requests with different prompts decoding at once: a decode step's time by the
        /// sequences running, from the per-token gaps while all of them decode.
        case concurrent
        /// One sequence decoding while a prompt of `inputTokens` arrives: what a prefill costs those decoding.
        case interference
    }

    public struct Point: Sendable, Equatable, Hashable {
        public var phase: Phase
        public var inputTokens: Int
        public var outputTokens: Int
        public var parallel: Int
        public var repetition: Int

        public init(phase: Phase, inputTokens: Int, outputTokens: Int, parallel: Int = 1, repetition: Int = 0) {
            self.phase = phase
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
            self.parallel = parallel
            self.repetition = repetition
        }

        /// The point's name in a trace file, e.g. `decode/i512/o1024/k1/r0`.
        public var key: String { "\(phase.rawValue)/i\(inputTokens)/o\(outputTokens)/k\(parallel)/r\(repetition)" }

        /// Tokens the engine processes for this point: what its device time is made of.
        public var tokens: (prefill: Int, decode: Int) { (inputTokens * parallel, outputTokens * parallel) }
    }

    public var points: [Point]
    /// Output lengths at which a streamed decode run is cut into decode records (the fits' checkpoints).
    public var decodeCheckpoints: [Int]

    public init(points: [Point], decodeCheckpoints: [Int]) {
        self.points = points
        self.decodeCheckpoints = decodeCheckpoints
    }

    /// The design for a model with `contextTokens` of context.
    ///
    /// - prefill: powers of two from 16 to the context (and the context itself), one output token each, `repeats`
    ///   times;
    /// - decode: one run of `decodeTokens` per input length in `decodeInputs` (those that fit the context);
    /// - parallel: `parallelFactors` samples of `parallelOutputTokens` at 128 input tokens;
    /// - concurrent: `concurrency` separate requests of `concurrencyTokens` decoding at once, at each input length
    ///   of `concurrencyInputs` that fits, and one interference point (a prompt arriving mid-decode);
    /// - `warmups` short runs first, not recorded.
    ///
    /// With `slots` (the engine's), no point asks for more sequences than it runs at once.
    public static func standard(
        contextTokens: Int,
        decodeInputs: [Int] = [128, 1024],
        decodeTokens: Int = 2048,
        parallelFactors: [Int] = [1, 2, 4, 8, 16, 32],
        parallelOutputTokens: Int = 128,
        repeats: Int = 3,
        warmups: Int = 2,
        maxPrefillTokens: Int? = nil,
        slots: Int? = nil,
        concurrency: [Int] = [],
        concurrencyTokens: Int = 128,
        concurrencyInputs: [Int] = [128, 1024]
    ) throws -> SweepDesign {
        guard contextTokens >= 64 else {
            throw EdgePlanError.invalidInput("the context must hold at least 64 tokens", field: "context")
        }
        guard decodeTokens >= 16 else {
            throw EdgePlanError.invalidInput("decode runs need at least 16 tokens", field: "decode-tokens")
        }
        guard repeats >= 1, warmups >= 0 else {
            throw EdgePlanError.invalidInput("repeats must be at least 1", field: "repeats")
        }
        var points: [Point] = (0..<warmups).map {
            Point(phase: .warmup, inputTokens: 64, outputTokens: 16, repetition: $0)
        }
        let prefillLimit = min(contextTokens - 1, maxPrefillTokens ?? contextTokens - 1)
        var inputs: [Int] = []
        var length = 16
        while length < prefillLimit {
            inputs.append(length)
            length *= 2
        }
        inputs.append(prefillLimit)
        for repetition in 0..<repeats {
            points += inputs.map { Point(phase: .prefill, inputTokens: $0, outputTokens: 1, repetition: repetition) }
        }
        let decodeInputs = decodeInputs.filter { $0 + decodeTokens <= contextTokens }
        guard !decodeInputs.isEmpty else {
            throw EdgePlanError.invalidInput(
                "no decode input fits the context: \(decodeTokens) output tokens need inputs of at most \(contextTokens - decodeTokens) tokens",
                field: "decode-tokens"
            )
        }
        points += decodeInputs.map { Point(phase: .decode, inputTokens: $0, outputTokens: decodeTokens) }
        let parallelInput = min(128, max(16, contextTokens / 4))
        let slots = slots ?? Int.max
        points += parallelFactors.filter { $0 >= 1 && $0 <= slots }.map {
            Point(
                phase: .parallel,
                inputTokens: parallelInput,
                outputTokens: min(parallelOutputTokens, contextTokens - parallelInput),
                parallel: $0
            )
        }
        let counts = Array(Set(concurrency.filter { $0 >= 1 && $0 <= slots } + (concurrency.isEmpty ? [] : [1])))
            .sorted()
        if !counts.isEmpty {
            for input in concurrencyInputs where input + concurrencyTokens <= contextTokens {
                points += counts.map {
                    Point(phase: .concurrent, inputTokens: input, outputTokens: concurrencyTokens, parallel: $0)
                }
            }
            // A prompt of a quarter of the context arriving while one sequence decodes.
            let prompt = max(16, min(1024, contextTokens / 4))
            if prompt + 1 <= contextTokens, 128 + concurrencyTokens <= contextTokens, slots >= 2 {
                points.append(Point(phase: .interference, inputTokens: prompt, outputTokens: concurrencyTokens))
            }
        }
        var checkpoints: [Int] = []
        var checkpoint = 16
        while checkpoint < decodeTokens {
            checkpoints.append(checkpoint)
            checkpoint *= 2
        }
        // Between the powers of two as well: the quadratic term needs several lengths per input.
        checkpoints += checkpoints.dropFirst().map { $0 + $0 / 2 }.filter { $0 < decodeTokens }
        checkpoints.append(decodeTokens)
        return SweepDesign(points: points, decodeCheckpoints: Array(Set(checkpoints)).sorted())
    }

    /// The points not yet in `done` (keys read back from a trace file), in order.
    public func remaining(after done: Set<String>) -> [Point] { points.filter { !done.contains($0.key) } }

    /// The device time of `points` under a variant's prediction (seconds): what the progress bar's ETA and
    /// `--time-budget` are judged by, before any point is measured.
    public static func deviceTimeS(_ points: [Point], variant: ModelVariant) -> Double {
        points.reduce(0) { total, point in
            let prefill = variant.prefillLatency.seconds(input: point.inputTokens)
            let decode = variant.decodeLatency.seconds(
                input: Double(point.inputTokens),
                output: Double(point.outputTokens)
            )
            return total + prefill + decode * variant.decodeFactor(point.parallel)
        }
    }
}
