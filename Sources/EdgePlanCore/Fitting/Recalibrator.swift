import Foundation

/// Refits a model variant's decode latency and power from reported runs, and accepts the new fit only
/// when it predicts the most recent, held-out runs better than the current one.
///
/// Decode time is recovered from each run as `(latency - predicted prefill) / parallel factor`. With enough
/// spread in output lengths both `n` and `m` of Eq. 2 are refitted (Tukey-weighted, so outliers and hostile
/// reports get no weight); otherwise `m` stays and `n` is the median per-token time. Power curves are scaled
/// by the median ratio of observed to predicted energy. Prefill is left alone: a run's total latency cannot
/// separate it from decode.
public struct Recalibrator: Sendable {
    public struct Outcome: Sendable {
        public var candidate: ModelVariant
        public var accepted: Bool
        public var reason: String
        public var fitted: Int
        public var heldOut: Int
        /// Hold-out latency MAPE (percent) of the current profile and of the candidate.
        public var currentLatencyMAPE: Double
        public var candidateLatencyMAPE: Double
        public var currentEnergyMAPE: Double?
        public var candidateEnergyMAPE: Double?
        public var rejectedOutliers: Int
    }

    /// Fewest runs worth fitting.
    public var minimumRuns = 12
    /// Share of the most recent runs held out for the acceptance test.
    public var holdOutShare = 0.25
    /// Output-length spread (max / min) needed to refit `m` as well as `n`.
    public var spreadForQuadratic = 3.0
    /// Share by which a candidate must lower the hold-out latency MAPE to be accepted: a fit that is better only
    /// within the runs' noise would churn the profile (a new version, cold fronts) for nothing.
    public var minimumImprovement = 0.05

    public init() {}

    public func refit(
        _ variant: ModelVariant,
        device: DeviceProfile,
        runs: [RunReport],
        at now: Double,
        label: String
    ) throws -> Outcome {
        try refit(variant, device: device, runs: runs[...], at: now, label: label)
    }

    /// A run reduced to the numbers a refit reads (no model name to copy along on every pass).
    private struct Run {
        var input: Int
        var output: Int
        var parallel: Int
        var latencyS: Double
        var energyJ: Double
        var time: Double
    }

    public func refit(
        _ variant: ModelVariant,
        device: DeviceProfile,
        runs: ArraySlice<RunReport>,
        at now: Double,
        label: String
    ) throws -> Outcome {
        let predictor = Predictor(device: device)
        var usable: [Run] = []
        usable.reserveCapacity(runs.count)
        for run in runs
        where run.variant == variant.id && run.outputTokens > 0 && run.latencyS > 0 && run.latencyS.isFinite {
            usable.append(
                Run(
                    input: run.inputTokens,
                    output: run.outputTokens,
                    parallel: run.decodingSequences,
                    latencyS: run.latencyS,
                    energyJ: run.engineEnergyJ ?? 0,
                    time: run.time
                )
            )
        }
        // The window arrives in time order; only otherwise is it sorted.
        if !zip(usable, usable.dropFirst()).allSatisfy({ $0.time <= $1.time }) { usable.sort { $0.time < $1.time } }
        guard usable.count >= minimumRuns else {
            throw EdgePlanError.invalidInput(
                "\(variant.id): \(usable.count) usable runs, need \(minimumRuns) to recalibrate"
            )
        }
        let heldOutCount = max(3, Int(Double(usable.count) * holdOutShare))
        let fitRuns = usable.dropLast(heldOutCount)
        let heldOut = usable.suffix(heldOutCount)

        // One pass over the fitted runs: Eq. 2's features (o and i·o + o(o−1)/2) and the decode time of each
        // run longer than its predicted prefill.
        var features: [Double] = []
        var targets: [Double] = []
        features.reserveCapacity(fitRuns.count * 2)
        targets.reserveCapacity(fitRuns.count)
        var shortest = Double.infinity
        var longest = 0.0
        for run in fitRuns {
            let decodeS =
                (run.latencyS - variant.startSeconds(input: run.input))
                / variant.decodeFactor(run.parallel)
            guard decodeS > 0 else { continue }
            let i = Double(run.input)
            let o = Double(run.output)
            features.append(o)
            features.append(i * o + o * (o - 1) / 2)
            targets.append(decodeS)
            shortest = min(shortest, o)
            longest = max(longest, o)
        }
        let count = targets.count
        guard count >= minimumRuns / 2 else {
            throw EdgePlanError.invalidInput("\(variant.id): too few runs longer than their predicted prefill")
        }
        /// The median per-token time with `m` held: `(decode − m·(i·o + o(o−1)/2)) / o`.
        func medianN(m: Double) -> Double {
            median((0..<count).map { (targets[$0] - m * features[2 * $0 + 1]) / features[2 * $0] })
        }
        var candidate = variant
        var rejected = 0
        let source = "recalibrated \(label) from \(count) reported runs"
        if longest / shortest >= spreadForQuadratic, count >= minimumRuns {
            let result = try RobustRegression.fit(flatFeatures: features, width: 2, targets: targets)
            let n = result.coefficients[0]
            let m = result.coefficients[1]
            if n > 1e-6, abs(m) <= 1e-3 {
                candidate.decodeLatency = DecodeLatencyModel(mSPerToken2: m, nSPerToken: n, source: source)
            } else {
                candidate.decodeLatency = DecodeLatencyModel(
                    mSPerToken2: variant.decodeLatency.mSPerToken2,
                    nSPerToken: medianN(m: variant.decodeLatency.mSPerToken2),
                    source: source
                )
            }
            rejected = result.rejected
        } else {
            let m = variant.decodeLatency.mSPerToken2
            candidate.decodeLatency = DecodeLatencyModel(mSPerToken2: m, nSPerToken: medianN(m: m), source: source)
        }

        // Scale with the latency already refitted so the energy ratio measures power alone.
        let ratios = fitRuns.compactMap { run in
            run.energyJ > 0 ? run.energyJ / Self.energy(predictor, candidate, run) : nil
        }
        if ratios.count >= minimumRuns / 2 {
            let scale = median(ratios)
            if scale.isFinite, scale > 0.2, scale < 5 {
                candidate.decodePower = candidate.decodePower.scaled(by: scale)
                candidate.prefillPower = candidate.prefillPower.scaled(by: scale)
                candidate.decodePowerSource =
                    "scaled by \(scale.significantDigits(5)) to \(ratios.count) reported energies (\(label)); was: \(variant.decodePowerSource)"
                candidate.prefillPowerSource =
                    "scaled by \(scale.significantDigits(5)) to \(ratios.count) reported energies (\(label)); was: \(variant.prefillPowerSource)"
            }
        }

        func latencyMAPE(_ v: ModelVariant) -> Double {
            mean(
                heldOut.map { run in
                    abs(
                        predictor.latencyS(v, input: run.input, output: Double(run.output), parallel: run.parallel)
                            - run.latencyS
                    ) / run.latencyS
                }
            ) * 100
        }
        func energyMAPE(_ v: ModelVariant) -> Double? {
            let errors = heldOut.compactMap { run in
                run.energyJ > 0 ? abs(Self.energy(predictor, v, run) - run.energyJ) / run.energyJ : nil
            }
            return errors.isEmpty ? nil : mean(errors) * 100
        }
        let current = latencyMAPE(variant)
        let fresh = latencyMAPE(candidate)
        let accepted = fresh < current * (1 - minimumImprovement)
        return Outcome(
            candidate: candidate,
            accepted: accepted,
            reason: accepted
                ? "hold-out latency MAPE \(current.percent) → \(fresh.percent)"
                : "kept the current profile: hold-out latency MAPE \(current.percent) vs candidate \(fresh.percent) (needs \((minimumImprovement * 100).significantDigits(3)) % less)",
            fitted: count,
            heldOut: heldOut.count,
            currentLatencyMAPE: current,
            candidateLatencyMAPE: fresh,
            currentEnergyMAPE: energyMAPE(variant),
            candidateEnergyMAPE: energyMAPE(candidate),
            rejectedOutliers: rejected
        )
    }

    /// Energy of a run as the profile predicts it, given how long the run actually took.
    private static func energy(_ predictor: Predictor, _ variant: ModelVariant, _ run: Run) -> Double {
        predictor.averagePowerW(variant, input: run.input, output: Double(run.output), parallel: run.parallel)
            * run.latencyS
    }

    private func median(_ values: [Double]) -> Double { RobustRegression.median(values) }
    private func mean(_ values: some Collection<Double>) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }
}

extension PowerCurve {
    /// The same curve with every wattage multiplied by `factor`.
    public func scaled(by factor: Double) -> PowerCurve {
        switch self {
        case let .piecewiseLog(threshold, constant, slope, intercept):
            .piecewiseLog(
                thresholdTokens: threshold,
                constantW: constant * factor,
                logSlopeW: slope * factor,
                logInterceptW: intercept * factor
            )
        case let .linear(slope, intercept):
            .linear(slopeWPerToken: slope * factor, interceptW: intercept * factor)
        case let .ramp(steady, deficit, tau):
            .ramp(steadyW: steady * factor, initialDeficitW: deficit * factor, timeConstantS: tau)
        }
    }
}

extension Double {
    /// A percentage with two decimals, as the journal shows refits.
    fileprivate var percent: String { "\(((self * 100).rounded() / 100).description) %" }
}
