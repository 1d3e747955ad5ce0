import Foundation

/// Weight precision of a model variant.
/// How a model's weights are stored: an open name (`fp16`, `awq-w4`, GGUF's `q8_0` or `q4_k_m`, `fp8`, `nvfp4`, ...)
/// in lower case. A variant's bytes per weight come from its profile (measured from the model file where it was
/// collected); ``nominalBitsPerWeight`` is the format's own figure where this build knows it.
public struct Quantization: RawRepresentable, Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// Accepts a name of 1-32 letters, digits, `.`, `_` or `-`, starting with a letter or digit, in any case; `f16`
    /// is `fp16` (GGUF's name for the same format). Nil for anything else.
    public init?(rawValue: String) {
        let name = rawValue.lowercased()
        guard let first = name.unicodeScalars.first, Self.nameCharacters.contains(first), first != ".",
            first != "-", first != "_", name.unicodeScalars.count <= 32,
            name.unicodeScalars.allSatisfy(Self.nameCharacters.contains)
        else { return nil }
        self.rawValue = Self.aliases[name] ?? name
    }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let value = Quantization(rawValue: raw) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: Self.rule(raw))
            )
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public static let fp16 = Quantization(known: "fp16")
    public static let awqW4 = Quantization(known: "awq-w4")

    private init(known: String) { rawValue = known }

    public var description: String { rawValue }

    public static func < (lhs: Quantization, rhs: Quantization) -> Bool { lhs.rawValue < rhs.rawValue }

    /// What a bad name is told: the rule, and names that follow it.
    public static func rule(_ raw: String) -> String {
        "unknown quantization '\(raw)': a quantization is a name of 1-32 letters, digits, '.', '_' or '-' "
            + "(fp16, bf16, awq-w4, gptq-w4, fp8, nvfp4, q8_0, q4_k_m, ...)"
    }

    /// A file's quantization field: the name, or an error naming the file, its line and the field.
    public static func parse(_ raw: String, file: String, line: Int) throws -> Quantization {
        guard let value = Quantization(rawValue: raw) else {
            throw EdgePlanError.invalidFile(rule(raw), file: file, line: line, field: "quantization")
        }
        return value
    }

    /// The format's bits per weight, blocks' scales included, where this build knows the format: a fallback for a
    /// variant whose model file was never read, and the check on a measured figure.
    public var nominalBitsPerWeight: Double? { Self.nominalBits[rawValue] }

    /// Whether matrix work runs at 16-bit (or wider) floating point rather than at an 8-bit rate: the roofline's
    /// compute peak.
    public var isSixteenBitOrWider: Bool { (nominalBitsPerWeight ?? 16) >= 16 }

    /// The quantization llama.cpp's `general.file_type` names (its `LLAMA_FTYPE_*` numbering), where it is one.
    public static func ggufFileType(_ type: Int) -> Quantization? {
        ggufFileTypes[type].flatMap(Quantization.init(rawValue:))
    }

    private static let nameCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789._-".unicodeScalars)
    private static let aliases = ["f16": "fp16", "float16": "fp16", "f32": "fp32", "float32": "fp32"]
    private static let ggufFileTypes: [Int: String] = [
        0: "fp32", 1: "fp16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1", 10: "q2_k", 11: "q3_k_s",
        12: "q3_k_m", 13: "q3_k_l", 14: "q4_k_s", 15: "q4_k_m", 16: "q5_k_s", 17: "q5_k_m", 18: "q6_k",
        19: "iq2_xxs", 20: "iq2_xs", 21: "q2_k_s", 22: "iq3_xs", 23: "iq3_xxs", 24: "iq1_s", 25: "iq4_nl",
        26: "iq3_s", 27: "iq3_m", 28: "iq2_s", 29: "iq2_m", 30: "iq4_xs", 31: "iq1_m", 32: "bf16", 36: "tq1_0",
        37: "tq2_0", 38: "mxfp4_moe", 39: "nvfp4",
    ]
    /// GGML's block sizes (bits of a block over its weights) for its own formats; the common names of other
    /// engines at their weights' width plus a group scale of 16 bits per 128 weights.
    private static let nominalBits: [String: Double] = [
        "fp32": 32, "fp16": 16, "bf16": 16, "q8_0": 8.5, "q5_0": 5.5, "q5_1": 6, "q4_0": 4.5, "q4_1": 5,
        "q6_k": 6.5625, "q5_k_s": 5.5, "q5_k_m": 5.5, "q4_k_s": 4.5, "q4_k_m": 4.5, "q3_k_s": 3.4375,
        "q3_k_m": 3.4375, "q3_k_l": 3.4375, "q2_k": 2.625, "q2_k_s": 2.625, "iq4_nl": 4.5, "iq4_xs": 4.25,
        "fp8": 8, "int8": 8, "w8a8": 8, "awq-w4": 4.125, "gptq-w4": 4.125, "nvfp4": 4.5, "mxfp4": 4.25,
    ]
}

/// What kind of model this is, which decides the modes it can run in.
public enum ModelFamily: String, Sendable, Hashable, CaseIterable {
    /// Emits a chain of thought before its answer (DeepSeek-R1 distills).
    case reasoning
    /// A reasoning model fine-tuned to follow token budgets (L1).
    case budgetAware = "budget-aware"
    /// Answers directly (instruction-tuned models).
    case direct
}

/// How a variant's coefficients were obtained.
public enum Calibration: String, Sendable, Hashable, CaseIterable {
    /// Fitted to measurements of this variant on this device.
    case measured
    /// Derived from published timings or a variant with the same architecture.
    case derived
    /// Estimated from parameters, bytes and device bandwidth only.
    case roofline
}

/// Identifies one model variant: a model at a quantization.
public struct VariantID: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var model: String
    public var quantization: Quantization

    public init(model: String, quantization: Quantization) {
        self.model = model
        self.quantization = quantization
    }

    public var description: String { "\(model)/\(quantization.rawValue)" }

    public static func < (lhs: VariantID, rhs: VariantID) -> Bool { lhs.description < rhs.description }
}

/// Prefill latency `a * Ipad^2 + b * Ipad + c` seconds, with `Ipad` the input rounded up to `paddingTokens` (Eq. 1).
public struct PrefillLatencyModel: Sendable, Equatable {
    public var aSPerToken2: Double
    public var bSPerToken: Double
    public var cS: Double
    public var paddingTokens: Int
    public var source: String

    public init(aSPerToken2: Double, bSPerToken: Double, cS: Double, paddingTokens: Int = 128, source: String) {
        self.aSPerToken2 = aSPerToken2
        self.bSPerToken = bSPerToken
        self.cS = cS
        self.paddingTokens = paddingTokens
        self.source = source
    }

    public func paddedTokens(_ input: Int) -> Double {
        let pad = max(paddingTokens, 1)
        return Double(max(1, (input + pad - 1) / pad) * pad)
    }

    public func seconds(input: Int) -> Double {
        let padded = paddedTokens(input)
        return aSPerToken2 * padded * padded + bSPerToken * padded + cS
    }
}

/// Decode latency `n * O + m * (I * O + O (O - 1) / 2)` seconds (Eq. 2).
public struct DecodeLatencyModel: Sendable, Equatable {
    public var mSPerToken2: Double
    public var nSPerToken: Double
    public var source: String

    public init(mSPerToken2: Double, nSPerToken: Double, source: String) {
        self.mSPerToken2 = mSPerToken2
        self.nSPerToken = nSPerToken
        self.source = source
    }

    public func seconds(input: Double, output: Double) -> Double {
        nSPerToken * output + mSPerToken2 * (input * output + output * (output - 1) / 2)
    }
}

/// How decoding `k` sequences at once changes decode latency and power (Section V-E, Fig. 10).
///
/// Engines scale unevenly (llama-server with `n = 2` took 2.3 times as long as one sequence on an H200, with `n = 8`
/// only 3.6 times): where a collection measured factors, they are used as measured, joined in log k between
/// measured counts; past the largest measured count the linear slope continues from it.
public struct ParallelScaling: Sendable, Equatable {
    /// Decode time grows by `1 + latencySlopePerSample * (k - 1)` where nothing was measured.
    public var latencySlopePerSample: Double
    /// Decode power grows by `1 + powerGainPerDoubling * log2(k)`.
    public var powerGainPerDoubling: Double
    /// Decode time at k samples against one sample, as measured (k > 1), by k.
    public var measuredLatencyFactors: [Int: Double]
    public var source: String

    public init(
        latencySlopePerSample: Double,
        powerGainPerDoubling: Double,
        measuredLatencyFactors: [Int: Double] = [:],
        source: String
    ) {
        self.latencySlopePerSample = latencySlopePerSample
        self.powerGainPerDoubling = powerGainPerDoubling
        self.measuredLatencyFactors = measuredLatencyFactors.filter { $0.key > 1 && $0.value > 0 }
        self.source = source
    }

    public func latencyFactor(_ k: Int) -> Double {
        let k = max(k, 1)
        guard k > 1, !measuredLatencyFactors.isEmpty else { return 1 + latencySlopePerSample * Double(k - 1) }
        if let measured = measuredLatencyFactors[k] { return measured }
        let points = [(1, 1.0)] + measuredLatencyFactors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let last = points[points.count - 1]
        if k > last.0 { return last.1 + latencySlopePerSample * Double(k - last.0) }
        let upper = points.firstIndex { $0.0 > k }!
        let (lowK, lowF) = points[upper - 1]
        let (highK, highF) = points[upper]
        let t = (log2(Double(k)) - log2(Double(lowK))) / (log2(Double(highK)) - log2(Double(lowK)))
        return lowF + t * (highF - lowF)
    }

    public func powerFactor(_ k: Int) -> Double { 1 + powerGainPerDoubling * log2(Double(max(k, 1))) }
}

/// Plurality-vote parameters of one model family (Section V-E, Fig. 9), anchored at token budgets.
///
/// ``PluralityVote`` turns them into accuracy; between anchors they are interpolated in log budget, outside
/// the anchors the nearest one holds.
public struct VotingModel: Sendable, Equatable {
    public struct Anchor: Sendable, Equatable {
        public var budgetTokens: Double
        /// Beta concentration of per-question correctness: small means questions are known or not.
        public var concentration: Double
        /// Share of samples that hit the cap and give no answer.
        public var unansweredAtCap: Double

        public init(budgetTokens: Double, concentration: Double, unansweredAtCap: Double) {
            self.budgetTokens = budgetTokens
            self.concentration = concentration
            self.unansweredAtCap = unansweredAtCap
        }
    }

    public var anchors: [Anchor]
    /// Root-mean-square error of the fit against the points it was fitted to, in accuracy points.
    public var fitErrorPoints: Double
    public var source: String

    public init(anchors: [Anchor], fitErrorPoints: Double, source: String) {
        self.anchors = anchors.sorted { $0.budgetTokens < $1.budgetTokens }
        self.fitErrorPoints = fitErrorPoints
        self.source = source
    }

    /// The parameters at a token budget (or, for unbudgeted modes, at the mean output length).
    public func parameters(atTokens tokens: Double) -> Anchor {
        guard let first = anchors.first, let last = anchors.last else {
            return Anchor(budgetTokens: tokens, concentration: 1, unansweredAtCap: 0)
        }
        if tokens <= first.budgetTokens { return first }
        if tokens >= last.budgetTokens { return last }
        for (lower, upper) in zip(anchors, anchors.dropFirst()) where tokens <= upper.budgetTokens {
            let t = (log(tokens) - log(lower.budgetTokens)) / (log(upper.budgetTokens) - log(lower.budgetTokens))
            return Anchor(
                budgetTokens: tokens,
                concentration: exp(
                    log(lower.concentration) + t * (log(upper.concentration) - log(lower.concentration))
                ),
                unansweredAtCap: lower.unansweredAtCap + t * (upper.unansweredAtCap - lower.unansweredAtCap)
            )
        }
        return last
    }

    /// Accuracy of the voted answer of `samples` samples whose single-sample accuracy is `single`.
    ///
    /// `capProbability` is the chance one sample runs into a hard cap; `atTokens` the budget (or mean length).
    public func accuracy(
        single: Double,
        samples: Int,
        capProbability: Double,
        options: Int,
        atTokens tokens: Double
    ) -> Double {
        let anchor = parameters(atTokens: tokens)
        return PluralityVote.accuracy(
            single: single,
            samples: samples,
            abstention: capProbability * anchor.unansweredAtCap,
            concentration: anchor.concentration,
            options: options
        )
    }
}

/// Spread of the output length around its measured mean (a log-normal with this coefficient of variation).
public struct OutputLengthSpread: Sendable, Equatable {
    public var coefficientOfVariation: Double
    public var source: String

    public init(coefficientOfVariation: Double, source: String) {
        self.coefficientOfVariation = coefficientOfVariation
        self.source = source
    }
}

/// One model at one quantization on one device: everything the predictor needs.
public struct ModelVariant: Sendable, Equatable {
    public var id: VariantID
    public var family: ModelFamily
    public var calibration: Calibration
    /// The model name an OpenAI-compatible engine serves this variant under.
    public var engineModel: String
    public var parametersBillion: Double
    public var bytesPerWeight: Double
    public var kvCacheBytesPerToken: Double
    public var runtimeOverheadGiB: Double
    public var contextTokens: Int
    public var prefillLatency: PrefillLatencyModel
    /// The paper's published prefill coefficients, kept to show what calibration changed.
    public var prefillLatencyReference: PrefillLatencyModel?
    public var prefillPower: PowerCurve
    public var prefillPowerSource: String
    public var decodeLatency: DecodeLatencyModel
    public var decodePower: PowerCurve
    public var decodePowerSource: String
    public var parallel: ParallelScaling
    public var voting: VotingModel
    public var outputLength: OutputLengthSpread
    /// How decode slows with the sequences the engine runs at once, and a request's fixed cost, where measured.
    public var concurrency: DecodeConcurrency? = nil

    public var weightBytes: Double { parametersBillion * 1e9 * bytesPerWeight }

    /// Decode time of a request of `k` samples over one sample's, alone on the engine: the parallel scaling where the
    /// collection measured it (a plan's k samples go in one request, and an engine may run them slower than k
    /// separate requests: llama-server's `n = 2` took 2.4 times one sample on an H100, two requests 1.5 times), else
    /// the measured concurrency curve, else the parallel scaling's slope. Past the largest k measured in one request,
    /// the curve's growth from there (the curve may have measured further).
    public func decodeFactor(_ k: Int) -> Double {
        guard let concurrency else { return parallel.latencyFactor(k) }
        guard let largest = parallel.measuredLatencyFactors.keys.max() else { return concurrency.stepFactor(k).factor }
        guard k > largest else { return parallel.latencyFactor(k) }
        return parallel.latencyFactor(largest) * concurrency.stepFactor(k).factor
            / max(concurrency.stepFactor(largest).factor, 1e-9)
    }

    /// How much slower a request's own k samples step than k sequences of separate requests on `curve`: what a
    /// timeline multiplies the request's step by, so that alone it takes ``decodeFactor(_:)`` and beside other runs the
    /// curve's growth from k to all the sequences decoding. 1 for one sample, and where the two agree.
    public func ownStepFactor(_ k: Int, curve: DecodeConcurrency) -> Double {
        guard k > 1 else { return 1 }
        let onCurve = curve.stepFactor(k).factor
        return onCurve > 0 ? max(decodeFactor(k) / onCurve, 1e-3) : 1
    }

    /// Decode power with `k` sequences over one sequence's.
    public func decodePowerFactor(_ k: Int) -> Double {
        concurrency.map { $0.powerFactor(k) } ?? parallel.powerFactor(k)
    }

    /// Seconds before a request's first decode step: its prefill and the request's fixed cost.
    public func startSeconds(input: Int) -> Double {
        prefillLatency.seconds(input: input) + (concurrency?.requestOverheadS ?? 0)
    }

    /// The concurrency curve its engine follows: the measured one, or, without one, the parallel scaling read as a
    /// step factor (what it already assumes for k samples), marked as such. A planner builds it once per variant.
    public var engineCurve: DecodeConcurrency {
        if let concurrency { return concurrency }
        let counts = [1, 2, 4, 8, 16, 32, 64, 128, 256]
        return DecodeConcurrency(
            stepFactors: Dictionary(uniqueKeysWithValues: counts.map { ($0, parallel.latencyFactor($0)) }),
            powerFactors: Dictionary(uniqueKeysWithValues: counts.map { ($0, parallel.powerFactor($0)) }),
            source: "parallel scaling (\(parallel.source))"
        )
    }

    /// What an engine timeline needs of a run of `parallel` sequences at `input` tokens producing `tokens` each.
    /// Its step is one sequence's times ``ownStepFactor(_:curve:)``, so that on `curve` alone it takes what its k
    /// samples in one request measured.
    public func timelineRun(
        id: String,
        parallel: Int,
        input: Int,
        tokens: Double,
        curve: DecodeConcurrency? = nil
    ) -> EngineTimeline.Run {
        let tokens = max(tokens, 1)
        let decodeS = decodeLatency.seconds(input: Double(input), output: tokens)
        return EngineTimeline.Run(
            id: id,
            sequences: parallel,
            prefillS: startSeconds(input: input),
            tokens: tokens,
            stepS: decodeS / tokens * ownStepFactor(parallel, curve: curve ?? engineCurve),
            started: false,
            decodePowerW: decodePower.averagePowerW(tokens: tokens, seconds: decodeS),
            prefillPowerW: prefillPower.averagePowerW(
                tokens: Double(input),
                seconds: prefillLatency.seconds(input: input)
            )
        )
    }
}
