import Foundation

/// Pure performance prediction over a profile: Eqs. 1–6 of the paper plus parallel scaling, memory and cost.
public struct Predictor: Sendable {
    public let device: DeviceProfile

    public init(device: DeviceProfile) {
        self.device = device
    }

    /// Predicts one run of `variant` on `input` prompt tokens producing `output` tokens in each of `parallel` sequences.
    public func predict(_ variant: ModelVariant, input: Int, output: Double, parallel: Int = 1) -> Prediction {
        let (prefillS, prefillPowerW, decodeS, decodePowerW) = phases(
            variant,
            input: input,
            output: output,
            parallel: parallel
        )
        let prefillEnergyJ = prefillPowerW * prefillS
        let decodeEnergyJ = decodePowerW * decodeS
        let memoryGiB = memoryGiB(variant, input: input, output: output, parallel: parallel)
        let tokens = Double(input) + Double(parallel) * output
        let costUSD =
            (prefillEnergyJ + decodeEnergyJ) / 3.6e6 * device.electricityUSDPerKWh
            + (prefillS + decodeS) / 3600 * device.hardwareUSDPerHour
        return Prediction(
            prefillS: prefillS,
            decodeS: decodeS,
            prefillPowerW: prefillPowerW,
            decodePowerW: decodePowerW,
            prefillEnergyJ: prefillEnergyJ,
            decodeEnergyJ: decodeEnergyJ,
            memoryGiB: memoryGiB,
            fits: memoryGiB <= device.usableMemoryGiB && Double(input) + output <= Double(variant.contextTokens),
            costUSDPerMTok: tokens > 0 ? costUSD / tokens * 1e6 : 0
        )
    }

    /// Decode seconds for `parallel` sequences of `output` tokens after `input` prompt tokens (Eq. 2 × scaling).
    /// Duration and average power of prefill and of decode.
    private func phases(
        _ variant: ModelVariant,
        input: Int,
        output: Double,
        parallel: Int
    ) -> (prefillS: Double, prefillPowerW: Double, decodeS: Double, decodePowerW: Double) {
        let prefillS = variant.startSeconds(input: input)
        let prefillPowerW = variant.prefillPower.averagePowerW(tokens: Double(input), seconds: prefillS)
        let decodeS = decodeSeconds(variant, input: input, output: output, parallel: parallel)
        let decodePowerW =
            output > 0
            ? variant.decodePower.averagePowerW(tokens: output, seconds: decodeS)
                * variant.decodePowerFactor(parallel)
            : 0
        return (prefillS, prefillPowerW, decodeS, decodePowerW)
    }

    /// Average power over a whole run, prefill and decode: what judges a reported energy against its latency.
    public func averagePowerW(_ variant: ModelVariant, input: Int, output: Double, parallel: Int = 1) -> Double {
        let (prefillS, prefillPowerW, decodeS, decodePowerW) = phases(
            variant,
            input: input,
            output: output,
            parallel: parallel
        )
        let seconds = prefillS + decodeS
        return seconds > 0 ? (prefillPowerW * prefillS + decodePowerW * decodeS) / seconds : 0
    }

    /// Latency and energy alone (no memory or cost): what a front's percentile point needs.
    public func latencyAndEnergy(
        _ variant: ModelVariant,
        input: Int,
        output: Double,
        parallel: Int = 1
    ) -> (latencyS: Double, energyJ: Double) {
        let (prefillS, prefillPowerW, decodeS, decodePowerW) = phases(
            variant,
            input: input,
            output: output,
            parallel: parallel
        )
        return (prefillS + decodeS, prefillPowerW * prefillS + decodePowerW * decodeS)
    }

    /// End-to-end latency alone (prefill and decode), for callers that need no energy, memory or cost.
    public func latencyS(_ variant: ModelVariant, input: Int, output: Double, parallel: Int = 1) -> Double {
        variant.startSeconds(input: input)
            + decodeSeconds(variant, input: input, output: output, parallel: parallel)
    }

    public func decodeSeconds(_ variant: ModelVariant, input: Int, output: Double, parallel: Int = 1) -> Double {
        guard output > 0 else { return 0 }
        return variant.decodeLatency.seconds(input: Double(input), output: output)
            * variant.decodeFactor(parallel)
    }

    /// Weights, KV cache for `parallel` sequences of `input + output` tokens, and the engine's own overhead.
    public func memoryGiB(_ variant: ModelVariant, input: Int, output: Double, parallel: Int) -> Double {
        let kvBytes = variant.kvCacheBytesPerToken * Double(parallel) * (Double(input) + output)
        return (variant.weightBytes + kvBytes) / 1_073_741_824 + variant.runtimeOverheadGiB
    }

    /// The largest output length whose total latency stays within `deadlineS`; nil when even prefill misses it.
    ///
    /// This is the inverse map of Eq. 3: solve `m/2 O^2 + (n + m (I - 1/2)) O = (D - prefill) / f(k)` for `O`.
    public func maxOutputTokens(_ variant: ModelVariant, input: Int, deadlineS: Double, parallel: Int = 1) -> Int? {
        let remaining =
            (deadlineS - variant.startSeconds(input: input)) / variant.decodeFactor(parallel)
        guard remaining >= 0 else { return nil }
        let m = variant.decodeLatency.mSPerToken2
        let n = variant.decodeLatency.nSPerToken
        let a = m / 2
        let b = n + m * (Double(input) - 0.5)
        var estimate: Double
        if abs(a) < 1e-15 {
            estimate = b > 0 ? remaining / b : Double(variant.contextTokens)
        } else {
            let discriminant = b * b + 4 * a * remaining
            estimate = discriminant >= 0 ? (-b + discriminant.squareRoot()) / (2 * a) : Double(variant.contextTokens)
        }
        let limit = max(variant.contextTokens - input, 0)
        var tokens = Int(min(max(estimate.rounded(.down), 0), Double(limit)))
        // Guard against rounding: step until the prediction agrees with the bound.
        while tokens > 0 && variant.decodeLatency.seconds(input: Double(input), output: Double(tokens)) > remaining {
            tokens -= 1
        }
        while tokens < limit
            && variant.decodeLatency.seconds(input: Double(input), output: Double(tokens + 1)) <= remaining
        { tokens += 1 }
        return tokens
    }
}
