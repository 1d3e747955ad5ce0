import Foundation

/// Where an output-length distribution comes from.
public enum LengthSource: String, Sendable, Equatable, Codable {
    /// Fitted to a soft/hard pair at the same budget (the hard cap censors the soft distribution).
    case fitted
    /// The measured mean with the spread of the model family's fits (no pair at this budget).
    case prior
    /// Posterior from reported output tokens.
    case learned
    /// No data of the family: an assumed spread around the measured mean.
    case assumed
}

/// Output length of one sample as a log-normal; a hard cap censors it (the engine stops at the cap).
public struct OutputLengthModel: Sendable, Equatable {
    /// Mean and standard deviation of log(tokens) before the cap.
    public let mu: Double
    public let sigma: Double
    /// When set, the engine stops at this many tokens: no run is ever longer.
    public let capTokens: Int?
    public let source: LengthSource
    /// Mean tokens a run produces: E[min(L, cap)]. Computed once (two error functions), since every front
    /// evaluation reads it.
    public let meanTokens: Double

    public init(mu: Double, sigma: Double, capTokens: Int?, source: LengthSource) {
        self.mu = mu
        self.sigma = max(sigma, 0)
        self.capTokens = capTokens
        self.source = source
        let spread = max(sigma, 0)
        if let capTokens {
            meanTokens = Self.censoredMean(mu: mu, sigma: spread, cap: Double(capTokens))
        } else {
            meanTokens = exp(mu + spread * spread / 2)
        }
    }

    /// The log-normal whose uncensored mean is `meanTokens`.
    public init(uncappedMeanTokens meanTokens: Double, sigma: Double, capTokens: Int?, source: LengthSource) {
        self.init(mu: log(max(meanTokens, 1)) - sigma * sigma / 2, sigma: sigma, capTokens: capTokens, source: source)
    }

    /// Mean length without the cap.
    public var uncappedMeanTokens: Double { exp(mu + sigma * sigma / 2) }

    /// Coefficient of variation of the uncensored length.
    public var coefficientOfVariation: Double { (exp(sigma * sigma) - 1).squareRoot() }

    /// Probability that one sample runs into the cap.
    public var capProbability: Double {
        guard let capTokens else { return 0 }
        return 1 - cdfUncapped(Double(capTokens))
    }

    /// E[min(L, B)] of a log-normal L.
    public static func censoredMean(mu: Double, sigma: Double, cap: Double) -> Double {
        guard sigma > 0 else { return min(exp(mu), cap) }
        let logCap = log(cap)
        return exp(mu + sigma * sigma / 2) * Normal.cdf((logCap - mu - sigma * sigma) / sigma)
            + cap * (1 - Normal.cdf((logCap - mu) / sigma))
    }

    /// The length not exceeded with probability `p`.
    public func quantile(_ p: Double) -> Double {
        let raw = exp(mu + sigma * Normal.quantile(p))
        if let capTokens { return min(raw, Double(capTokens)) }
        return raw
    }

    /// The length that the longest of `k` independent samples stays under with probability `p`.
    public func quantileOfMaximum(_ p: Double, samples k: Int) -> Double {
        quantile(pow(p, 1 / Double(max(k, 1))))
    }

    private func cdfUncapped(_ tokens: Double) -> Double {
        guard tokens > 0 else { return 0 }
        if sigma == 0 { return tokens >= exp(mu) ? 1 : 0 }
        return Normal.cdf((log(tokens) - mu) / sigma)
    }

    /// Probability that one sample is at most `tokens` long.
    public func cdf(_ tokens: Double) -> Double {
        if let capTokens, tokens >= Double(capTokens) { return 1 }
        return cdfUncapped(tokens)
    }

    /// Probability that at least one of `k` samples is longer than `tokens`.
    public func exceedanceProbability(_ tokens: Double, samples k: Int) -> Double {
        max(0, min(1, 1 - pow(cdf(tokens), Double(max(k, 1)))))
    }

    /// The sigma of a log-normal with this coefficient of variation.
    public static func sigma(coefficientOfVariation cv: Double) -> Double { log(1 + cv * cv).squareRoot() }
}
