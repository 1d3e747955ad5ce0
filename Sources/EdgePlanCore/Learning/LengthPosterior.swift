import Foundation

/// What reported output tokens say about one configuration's length distribution: a log-normal fitted by
/// expectation-maximisation to the most recent observations, with samples that hit a hard cap treated as
/// censored (only "at least the cap" is known), and the profile's distribution counted as `priorWeight`
/// pseudo-observations.
public struct LengthPosterior: Sendable, Equatable {
    public var prior: OutputLengthModel
    public var priorWeight: Double
    /// Newest observations in log tokens, with whether each ran into the cap.
    public private(set) var samples: [(logTokens: Double, censored: Bool)] = []
    public static let capacity = 512

    public init(prior: OutputLengthModel, priorWeight: Double) {
        self.prior = prior
        self.priorWeight = priorWeight
    }

    public static func == (lhs: LengthPosterior, rhs: LengthPosterior) -> Bool {
        lhs.prior == rhs.prior && lhs.priorWeight == rhs.priorWeight && lhs.samples.map(\.logTokens) == rhs.samples.map(\.logTokens)
    }

    public var observations: Int { samples.count }

    /// Adds one sample's length; at or above `capTokens` it counts as censored.
    public mutating func observe(tokens: Int, capTokens: Int?) {
        let censored = capTokens.map { tokens >= $0 } ?? false
        samples.append((log(Double(max(tokens, 1))), censored))
        if samples.count > Self.capacity { samples.removeFirst(samples.count - Self.capacity) }
    }

    /// The posterior distribution: the prior's parameters pulled toward the data by EM on the censored normal
    /// of log lengths.
    public var model: OutputLengthModel {
        guard !samples.isEmpty else { return prior }
        var mu = prior.mu
        var sigma = max(prior.sigma, 0.05)
        let w = priorWeight
        for _ in 0..<30 {
            var sum = w * prior.mu
            var sumSquares = w * (prior.sigma * prior.sigma + prior.mu * prior.mu)
            for sample in samples {
                if sample.censored {
                    // E[x | x > c] and E[x² | x > c] of a normal(μ, σ) truncated below at c.
                    let z = (sample.logTokens - mu) / sigma
                    let tail = max(1 - Normal.cdf(z), 1e-12)
                    let ratio = Normal.pdf(z) / tail
                    let first = mu + sigma * ratio
                    let second = mu * mu + sigma * sigma + sigma * (sample.logTokens + mu) * ratio
                    sum += first
                    sumSquares += second
                } else {
                    sum += sample.logTokens
                    sumSquares += sample.logTokens * sample.logTokens
                }
            }
            let n = w + Double(samples.count)
            mu = sum / n
            sigma = max((sumSquares / n - mu * mu).squareRoot(), 0.05)
        }
        return OutputLengthModel(mu: mu, sigma: sigma, capTokens: prior.capTokens, source: .learned)
    }
}
