import Foundation

/// Fits a model variant's device-specific parts from measurements: prefill and decode latency, their
/// power, and parallel scaling, each judged on held-out measurements. What measurements cannot tell
/// (weights, KV cache, accuracy behaviour) comes from a base variant of the same model.
public struct ProfileCalibrator: Sendable {
    public struct PhaseReport: Sendable {
        public var phase: String
        public var fitted: Int
        public var heldOut: Int
        public var fitMAPE: Double
        public var heldOutMAPE: Double
        public var rejectedOutliers: Int
        public var coefficients: [(String, Double)]
    }

    public struct Report: Sendable {
        public var variant: ModelVariant
        public var phases: [PhaseReport]
        public var regimes: RegimeFitter.Result?
        /// Figures the measurements could not give, kept from the base variant, each with why: calibrate prints
        /// them, and the variant's own sources say so, so that no figure claims a measurement it did not have.
        public var kept: [(figure: String, why: String)] = []
    }

    /// Decode records (batch 1) a decode fit needs, without per-token traces.
    public static let minimumDecodeRecords = 6

    /// Every `holdOutEvery`-th measurement (in file order) is held out.
    public var holdOutEvery = 5
    /// Input buckets the engine pads prompts to (the Orin artifact's 128); 1 for an engine that pads nothing.
    public var prefillPaddingTokens = 128
    public var regimeFitter = RegimeFitter()

    public init() {}

    public func calibrate(
        base: ModelVariant,
        device: DeviceProfile,
        observations: [Observation],
        series: [TokenTimeSeries],
        label: String
    ) throws -> Report {
        var variant = base
        variant.calibration = .measured
        var phases: [PhaseReport] = []
        func split(_ points: [Observation]) -> (fit: [Observation], held: [Observation]) {
            (
                points.enumerated().filter { $0.offset % holdOutEvery != 0 }.map(\.element),
                points.enumerated().filter { $0.offset % holdOutEvery == 0 }.map(\.element)
            )
        }
        func mape(
            _ points: [Observation],
            _ predict: (Observation) -> Double,
            _ truth: (Observation) -> Double
        ) -> Double {
            points.isEmpty
                ? .nan
                : points.map { abs(predict($0) - truth($0)) / truth($0) }.reduce(0, +) / Double(points.count) * 100
        }

        let prefill = observations.filter { $0.phase == .prefill && $0.batch == 1 && $0.latencyS > 0 }
        if prefill.count >= 6 {
            let (fit, held) = split(prefill)
            let (model, result) = try LatencyFitter.prefill(
                fit,
                paddingTokens: prefillPaddingTokens,
                source: "fitted by edgeplan calibrate (robust) to \(fit.count) prefill measurements, \(label)"
            )
            variant.prefillLatency = model
            variant.prefillLatencyReference = nil
            phases.append(
                PhaseReport(
                    phase: "prefill latency",
                    fitted: fit.count,
                    heldOut: held.count,
                    fitMAPE: mape(fit, { model.seconds(input: $0.inputTokens) }, \.latencyS),
                    heldOutMAPE: mape(held, { model.seconds(input: $0.inputTokens) }, \.latencyS),
                    rejectedOutliers: result.rejected,
                    coefficients: [
                        ("a_s_per_token2", model.aSPerToken2), ("b_s_per_token", model.bSPerToken), ("c_s", model.cS),
                    ]
                )
            )
            if let (power, report) = try energyPhase(
                "prefill",
                prefill,
                tokens: { Double($0.inputTokens) },
                label: label
            ) {
                variant.prefillPower = power
                variant.prefillPowerSource =
                    "robust \(power.formName) fit to \(report.fitted) prefill energy measurements, \(label)"
                phases.append(report)
            }
        }

        var kept: [(figure: String, why: String)] = []
        if prefill.count < 6 {
            kept.append(
                (
                    "prefill latency",
                    "\(prefill.count) prefill records (6 needed); kept: \(base.prefillLatency.source)"
                )
            )
        } else if variant.prefillPowerSource == base.prefillPowerSource {
            kept.append(("prefill power", "no prefill record carries energy; kept: \(base.prefillPowerSource)"))
        }
        let decode = observations.filter {
            $0.phase == .decode && $0.batch == 1 && $0.latencyS > 0 && $0.outputTokens > 0
        }
        // Decode is what a plan's latency mostly is: without it measured, the profile would claim a measurement it
        // does not have, and plans would run at the base's speed. Refused, whole.
        if decode.count < Self.minimumDecodeRecords && !series.contains(where: { $0.batch == 1 }) {
            throw EdgePlanError.invalidInput(
                "\(base.id): decode cannot be measured from these traces: \(decode.count) single-sample decode records (\(Self.minimumDecodeRecords) needed) and no per-token traces; nothing was written. A stream that came in bursts leaves only the engine's totals: collect again with several output lengths (each run is one decode record), on a quieter engine"
            )
        }
        if decode.count >= 6 {
            let (fit, held) = split(decode)
            let (model, result) = try LatencyFitter.decode(
                fit,
                source: "single robust fit to \(fit.count) decode measurements, \(label)"
            )
            let predict: (Observation) -> Double = {
                model.seconds(input: Double($0.inputTokens), output: Double($0.outputTokens))
            }
            phases.append(
                PhaseReport(
                    phase: "decode latency (one fit)",
                    fitted: fit.count,
                    heldOut: held.count,
                    fitMAPE: mape(fit, predict, \.latencyS),
                    heldOutMAPE: mape(held, predict, \.latencyS),
                    rejectedOutliers: result.rejected,
                    coefficients: [("m_s_per_token2", model.mSPerToken2), ("n_s_per_token", model.nSPerToken)]
                )
            )
            variant.decodeLatency = model
            // Early checkpoints carry the prefill's power spike; the steady decode power starts after a few steps.
            if let (power, report) = try energyPhase(
                "decode",
                decode.filter { $0.outputTokens >= 16 },
                tokens: { Double($0.outputTokens) },
                label: label
            ) {
                variant.decodePower = power
                variant.decodePowerSource =
                    "robust \(power.formName) fit to \(report.fitted) decode energy measurements, \(label)"
                phases.append(report)
            } else {
                kept.append(("decode power", "no decode record carries energy; kept: \(base.decodePowerSource)"))
            }
        }

        var regimes: RegimeFitter.Result?
        let singles = series.filter { $0.batch == 1 }
        if !singles.isEmpty {
            // Regimes move the per-token time; the attention term is the model's KV-cache read at the device's
            // bandwidth (fitting it too would let it soak up regime changes that coincide with input lengths).
            let result = try regimeFitter.fit(
                singles,
                mSPerToken2: base.kvCacheBytesPerToken / (device.memoryBandwidthGBps * 1e9)
            )
            regimes = result
            // The regime seen for the most tokens (here the slower, so deadlines err on the safe side) becomes the profile's decode speed; the watchdog moves
            // it when the engine changes regime.
            if let main = result.regimes.max(by: { $0.tokens < $1.tokens }) {
                let levels = result.regimes.map {
                    "\(($0.nSPerToken * 1000).significantDigits(3)) ms (\($0.tokens) tokens)"
                }.joined(separator: ", ")
                variant.decodeLatency = DecodeLatencyModel(
                    mSPerToken2: result.mSPerToken2,
                    nSPerToken: main.nSPerToken,
                    source:
                        "regime fit to per-token traces, \(label): the regime with the most tokens; regimes seen: \(levels)"
                )
            }
        }

        let batched = observations.filter { $0.phase == .decode && $0.outputTokens >= 32 && $0.latencyS > 0 }
        if let parallel = Self.parallelScaling(
            batched,
            regimeLevels: regimes?.regimes.map(\.nSPerToken) ?? [],
            base: base.parallel,
            label: label
        ) {
            variant.parallel = parallel
        } else {
            let why = "no batched decode run of 32 tokens or more beside a single-sample one"
            variant.parallel.source = "kept from the base profile (\(why)): \(base.parallel.source)"
            kept.append(("parallel scaling", "\(why); kept: \(base.parallel.source)"))
        }
        // Measured as a whole only when prefill and decode both were.
        if prefill.count < 6 { variant.calibration = base.calibration == .measured ? .derived : base.calibration }
        return Report(variant: variant, phases: phases, regimes: regimes, kept: kept)
    }

    /// A power curve in the phase's token count, fitted to the measurements with energy, and its energy MAPE.
    private func energyPhase(
        _ phase: String,
        _ points: [Observation],
        tokens: (Observation) -> Double,
        label: String
    ) throws -> (PowerCurve, PhaseReport)? {
        let powered = points.filter { ($0.energyJ ?? 0) > 0 }
        guard powered.count >= 6 else { return nil }
        let fit = powered.enumerated().filter { $0.offset % holdOutEvery != 0 }.map(\.element)
        let held = powered.enumerated().filter { $0.offset % holdOutEvery == 0 }.map(\.element)
        let power = try Self.fitPower(fit.map { (tokens($0), $0.energyJ! / $0.latencyS) })
        func mape(_ set: [Observation]) -> Double {
            set.map {
                abs(power.averagePowerW(tokens: tokens($0), seconds: $0.latencyS) * $0.latencyS - $0.energyJ!) / $0
                    .energyJ!
            }.reduce(0, +) / Double(set.count) * 100
        }
        return (
            power,
            PhaseReport(
                phase: "\(phase) energy",
                fitted: fit.count,
                heldOut: held.count,
                fitMAPE: mape(fit),
                heldOutMAPE: held.isEmpty ? .nan : mape(held),
                rejectedOutliers: 0,
                coefficients: Self.coefficients(power)
            )
        )
    }

    /// Per-token time and power at batch B against batch 1. With regime levels, each batched run is compared
    /// with the level of its own regime (the nearest), so a regime change is not mistaken for batching cost.
    static func parallelScaling(
        _ runs: [Observation],
        regimeLevels: [Double],
        base: ParallelScaling,
        label: String
    ) -> ParallelScaling? {
        var slopes: [Double] = []
        var gains: [Double] = []
        var factors: [Int: [Double]] = [:]
        let singles = runs.filter { $0.batch == 1 }
        func perToken(_ run: Observation) -> Double { run.latencyS / Double(run.outputTokens) }
        for run in runs where run.batch > 1 {
            let reference: Double
            if let level = regimeLevels.min(by: {
                abs(Foundation.log(perToken(run) / $0)) < abs(Foundation.log(perToken(run) / $1))
            }) {
                reference = level
            } else if let single = singles.first(where: {
                $0.inputTokens == run.inputTokens && $0.outputTokens == run.outputTokens
            }) {
                reference = perToken(single)
            } else {
                continue
            }
            slopes.append((perToken(run) / reference - 1) / Double(run.batch - 1))
            factors[run.batch, default: []].append(perToken(run) / reference)
            // Power against batch-1 runs of the same speed (same regime).
            let peers = singles.filter { ($0.energyJ ?? 0) > 0 && abs(Foundation.log(perToken($0) / reference)) < 0.15 }
            if let energy = run.energyJ, energy > 0, !peers.isEmpty {
                let basePower = RobustRegression.median(peers.map { $0.energyJ! / $0.latencyS })
                gains.append(((energy / run.latencyS) / basePower - 1) / log2(Double(run.batch)))
            }
        }
        // One batched run measures its factor: a collection with k = 2 and 4 gives two, and they are used, not the
        // base's.
        guard !slopes.isEmpty else { return nil }
        let gain = gains.isEmpty ? base.powerGainPerDoubling : max(0, RobustRegression.median(gains))
        return ParallelScaling(
            latencySlopePerSample: max(0, RobustRegression.median(slopes)),
            powerGainPerDoubling: gain,
            measuredLatencyFactors: factors.mapValues { RobustRegression.median($0) },
            source:
                "factors measured at \(factors.keys.sorted().map(String.init).joined(separator: ", ")) samples (medians), slope beyond them the median "
                + "over \(slopes.count) batched decode runs against batch 1 of the same regime, \(label)"
                + (gains.isEmpty
                    ? "; power gain kept from the base profile (no batch-1 run in the batched runs' regime)" : "")
        )
    }

    /// The better (by fit-set MAPE) of a linear and a logarithmic (Eq. 4's form) curve in the token count.
    static func fitPower(_ points: [(tokens: Double, watts: Double)]) throws -> PowerCurve {
        let linear = try RobustRegression.fit(features: points.map { [$0.tokens, 1] }, targets: points.map(\.watts))
            .coefficients
        let logarithmic = try RobustRegression.fit(
            features: points.map { [Foundation.log(max($0.tokens, 1)), 1] },
            targets: points.map(\.watts)
        ).coefficients
        // Power falling with tokens would extrapolate towards zero on long runs: such fits give way to a constant.
        var candidates: [PowerCurve] = [
            .linear(slopeWPerToken: 0, interceptW: RobustRegression.median(points.map(\.watts)))
        ]
        if linear[0] >= 0 { candidates.append(.linear(slopeWPerToken: linear[0], interceptW: max(0, linear[1]))) }
        if logarithmic[0] >= 0 {
            // Floored at the lowest measured power (10th percentile), as Eq. 4's constant part.
            let floor = points.map(\.watts).sorted()[points.count / 10]
            candidates.append(
                .piecewiseLog(
                    thresholdTokens: 1,
                    constantW: floor,
                    logSlopeW: logarithmic[0],
                    logInterceptW: logarithmic[1]
                )
            )
        }
        func error(_ curve: PowerCurve) -> Double {
            points.map { abs(curve.averagePowerW(tokens: $0.tokens, seconds: 1) - $0.watts) / $0.watts }.reduce(0, +)
        }
        return candidates.min { error($0) < error($1) }!
    }

    static func coefficients(_ curve: PowerCurve) -> [(String, Double)] {
        switch curve {
        case let .linear(slope, intercept): [("slope_w_per_token", slope), ("intercept_w", intercept)]
        case let .piecewiseLog(_, _, slope, intercept): [("log_slope_w", slope), ("log_intercept_w", intercept)]
        case let .ramp(steady, deficit, tau):
            [("steady_w", steady), ("initial_deficit_w", deficit), ("time_constant_s", tau)]
        }
    }
}
