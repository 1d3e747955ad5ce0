/// Fits the prefill (Eq. 1) and decode (Eq. 2) latency models to observations.
public enum LatencyFitter {
    /// Robust fit of `a Ipad^2 + b Ipad + c` over every observed input length.
    public static func prefill(
        _ observations: [Observation],
        paddingTokens: Int = 128,
        source: String
    ) throws -> (PrefillLatencyModel, RobustRegression.Result) {
        let points = observations.filter { $0.phase == .prefill && $0.latencyS > 0 && $0.batch == 1 }
        let shape = PrefillLatencyModel(
            aSPerToken2: 0,
            bSPerToken: 0,
            cS: 0,
            paddingTokens: paddingTokens,
            source: source
        )
        let features = points.map { point -> [Double] in
            let padded = shape.paddedTokens(point.inputTokens)
            return [padded * padded, padded, 1]
        }
        let result = try RobustRegression.fit(features: features, targets: points.map(\.latencyS))
        let beta = result.coefficients
        return (
            PrefillLatencyModel(
                aSPerToken2: beta[0],
                bSPerToken: beta[1],
                cS: beta[2],
                paddingTokens: paddingTokens,
                source: source
            ), result
        )
    }

    /// Robust fit of `n O + m (I O + O (O - 1) / 2)` to single-sequence decode observations.
    public static func decode(
        _ observations: [Observation],
        source: String
    ) throws -> (DecodeLatencyModel, RobustRegression.Result) {
        let points = observations.filter {
            $0.phase == .decode && $0.latencyS > 0 && $0.outputTokens > 0 && $0.batch == 1
        }
        let features = points.map { point -> [Double] in
            let i = Double(point.inputTokens)
            let o = Double(point.outputTokens)
            return [o, i * o + o * (o - 1) / 2]
        }
        let result = try RobustRegression.fit(features: features, targets: points.map(\.latencyS))
        return (
            DecodeLatencyModel(mSPerToken2: result.coefficients[1], nSPerToken: result.coefficients[0], source: source),
            result
        )
    }
}
