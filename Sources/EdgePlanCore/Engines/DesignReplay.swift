import Foundation

/// Replays a published decode sweep to judge a cheaper one: fit only from the runs a design would measure, score
/// on every run of the sweep.
///
/// A streamed decode run of `cap` tokens shows the decode time and energy at every shorter length, so a design of
/// one run per chosen input length measures every (input, output ≤ cap) point of the published grid at those inputs,
/// for the device time of its longest runs alone. The design is chosen by a rule, not by its score: the longest cap
/// of the grid (no output length is extrapolated), the shortest input, and the longest input that keeps the design
/// within `budgetShare` of the sweep's device time (the widest spread of inputs the budget allows, which the
/// attention term needs).
public enum DesignReplay {
    public struct Result: Sendable {
        public var model: String
        public var inputs: [Int]
        public var capTokens: Int
        public var fittedPoints: Int
        public var scoredRuns: Int
        public var designTimeS: Double
        public var sweepTimeS: Double
        public var decodeMAPE: Double
        public var energyMAPE: Double?
        /// The same errors with every run of the sweep fitted: what the design gives up.
        public var fullDecodeMAPE: Double
        public var fullEnergyMAPE: Double?
        public var decode: DecodeLatencyModel
        public var share: Double { designTimeS / sweepTimeS }
    }

    /// Replays the decode runs of one model.
    public static func replay(_ runs: [Observation], budgetShare: Double = 0.03) throws -> Result {
        let runs = runs.filter { $0.phase == .decode && $0.batch == 1 && $0.latencyS > 0 && $0.outputTokens > 0 }
        guard let model = runs.first?.model, runs.count >= 12 else {
            throw EdgePlanError.invalidInput(
                "a replay needs a decode sweep of at least 12 runs of one model",
                field: "replay"
            )
        }
        let sweepTime = runs.reduce(0) { $0 + $1.latencyS }
        let cap = runs.map(\.outputTokens).max()!
        let inputs = Set(runs.map(\.inputTokens)).sorted()
        // The longest run at an input is the one streamed run that would measure every shorter one there.
        func longestRun(_ input: Int) -> Observation? {
            runs.filter { $0.inputTokens == input }.max { $0.outputTokens < $1.outputTokens }
        }
        func longest(_ input: Int) -> Double? { longestRun(input)?.latencyS }
        guard let first = inputs.first, let firstTime = longest(first) else {
            throw EdgePlanError.invalidInput("the sweep has no runs", field: "replay")
        }
        var chosen = [first]
        var designTime = firstTime
        if let second = inputs.dropFirst().reversed().first(where: {
            (longest($0) ?? .infinity) + firstTime <= budgetShare * sweepTime
        }) {
            chosen.append(second)
            designTime += longest(second)!
        }
        let measured = runs.filter { run in
            chosen.contains(run.inputTokens) && run.outputTokens <= longestRun(run.inputTokens)!.outputTokens
        }
        let (decode, power) = try fit(measured)
        let (fullDecode, fullPower) = try fit(runs)
        return Result(
            model: model,
            inputs: chosen,
            capTokens: cap,
            fittedPoints: measured.count,
            scoredRuns: runs.count,
            designTimeS: designTime,
            sweepTimeS: sweepTime,
            decodeMAPE: latencyMAPE(decode, runs),
            energyMAPE: power.map { energyMAPE(decode, $0, runs) },
            fullDecodeMAPE: latencyMAPE(fullDecode, runs),
            fullEnergyMAPE: fullPower.map { energyMAPE(fullDecode, $0, runs) },
            decode: decode
        )
    }

    /// The decode model fitted to relative errors (each run weighs by its own duration), and the power curve.
    static func fit(_ runs: [Observation]) throws -> (DecodeLatencyModel, PowerCurve?) {
        let features = runs.map { run -> [Double] in
            let i = Double(run.inputTokens)
            let o = Double(run.outputTokens)
            return [o / run.latencyS, (i * o + o * (o - 1) / 2) / run.latencyS]
        }
        let result = try RobustRegression.fit(features: features, targets: runs.map { _ in 1 })
        let decode = DecodeLatencyModel(
            mSPerToken2: result.coefficients[1],
            nSPerToken: result.coefficients[0],
            source: "replay fit"
        )
        let powered = runs.filter { ($0.energyJ ?? 0) > 0 && $0.outputTokens >= 16 }
        guard powered.count >= 6 else { return (decode, nil) }
        let byTokens = try ProfileCalibrator.fitPower(
            powered.map { (Double($0.outputTokens), $0.energyJ! / $0.latencyS) }
        )
        // The artifact's own form: power ramps up over the run's time. Least squares in (steady, deficit) for each
        // time constant on a log grid, the best by relative energy error.
        var best: (PowerCurve, Double)?
        for step in 0...60 {
            let tau = 0.1 * pow(10, Double(step) / 20)
            var sw = 0.0
            var sg = 0.0
            var sgg = 0.0
            var sp = 0.0
            var sgp = 0.0
            for run in powered {
                // Average power over a run of T seconds: steady - deficit * g, g = tau / T (1 - exp(-T / tau));
                // weighted by 1 / power^2, so the residuals are relative.
                let g = tau / run.latencyS * (1 - exp(-run.latencyS / tau))
                let watts = run.energyJ! / run.latencyS
                let w = 1 / (watts * watts)
                sw += w
                sg += w * g
                sgg += w * g * g
                sp += w * watts
                sgp += w * g * watts
            }
            let det = sw * sgg - sg * sg
            guard abs(det) > 1e-300 else { continue }
            let steady = (sgg * sp - sg * sgp) / det
            let deficit = -(sw * sgp - sg * sp) / det
            let curve = PowerCurve.ramp(steadyW: steady, initialDeficitW: deficit, timeConstantS: tau)
            let error = powered.map {
                abs(curve.averagePowerW(tokens: 0, seconds: $0.latencyS) * $0.latencyS - $0.energyJ!) / $0.energyJ!
            }.reduce(0, +)
            if best == nil || error < best!.1 { best = (curve, error) }
        }
        let tokenError = powered.map {
            abs(
                byTokens.averagePowerW(tokens: Double($0.outputTokens), seconds: $0.latencyS) * $0.latencyS - $0
                    .energyJ!
            ) / $0.energyJ!
        }.reduce(0, +)
        let power = best.map { $0.1 < tokenError ? $0.0 : byTokens } ?? byTokens
        return (decode, power)
    }

    static func latencyMAPE(_ model: DecodeLatencyModel, _ runs: [Observation]) -> Double {
        runs.map {
            abs(model.seconds(input: Double($0.inputTokens), output: Double($0.outputTokens)) - $0.latencyS)
                / $0.latencyS
        }
        .reduce(0, +) / Double(runs.count) * 100
    }

    static func energyMAPE(_ model: DecodeLatencyModel, _ power: PowerCurve, _ runs: [Observation]) -> Double {
        let powered = runs.filter { ($0.energyJ ?? 0) > 0 }
        return powered.map { run in
            let seconds = model.seconds(input: Double(run.inputTokens), output: Double(run.outputTokens))
            let joules = power.averagePowerW(tokens: Double(run.outputTokens), seconds: seconds) * seconds
            return abs(joules - run.energyJ!) / run.energyJ!
        }.reduce(0, +) / Double(max(1, powered.count)) * 100
    }
}
