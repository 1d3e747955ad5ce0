import Foundation

/// What reported output tokens say about one configuration's length distribution: a log-normal fitted by
/// expectation-maximisation to the most recent observations, with samples that hit a hard cap treated as
/// censored (only "at least the cap" is known), and the profile's distribution counted as `priorWeight`
/// pseudo-observations.
public struct LengthPosterior: Sendable, Equatable {
    public var prior: OutputLengthModel
    public var priorWeight: Double
    /// Newest observations in log tokens, with whether each ran into the cap.
    public var samples: ArraySlice<(logTokens: Double, censored: Bool)> { window.suffix(Self.capacity) }
    /// The newest samples, trimmed back to ``capacity`` in batches.
    private var window: [(logTokens: Double, censored: Bool)] = []
    public static let capacity = 512

    public init(prior: OutputLengthModel, priorWeight: Double) {
        self.prior = prior
        self.priorWeight = priorWeight
    }

    public static func == (lhs: LengthPosterior, rhs: LengthPosterior) -> Bool {
        lhs.prior == rhs.prior && lhs.priorWeight == rhs.priorWeight
            && lhs.samples.map(\.logTokens) == rhs.samples.map(\.logTokens)
    }

    public var observations: Int { min(window.count, Self.capacity) }
    /// Samples ever observed (the window keeps the newest ``capacity``): changes whenever the window does.
    public private(set) var revision = 0

    /// Adds one sample's length; at or above `capTokens` it counts as censored.
    public mutating func observe(tokens: Int, capTokens: Int?) { observe(tokens: [tokens], capTokens: capTokens) }

    /// Adds the lengths of several samples (of one parallel run).
    public mutating func observe(tokens: [Int], capTokens: Int?) {
        for value in tokens {
            let censored = capTokens.map { value >= $0 } ?? false
            window.append((log(Double(max(value, 1))), censored))
        }
        revision += tokens.count
        // Trimmed in batches, so the window is not shifted on every report.
        if window.count > Self.capacity + Self.capacity / 4 { window.removeFirst(window.count - Self.capacity) }
    }

    /// The posterior distribution: the prior's parameters pulled toward the data by EM on the censored normal
    /// of log lengths.
    public var model: OutputLengthModel { model(startingFrom: nil) }

    /// The same fit, with EM started from `start` (an earlier fit of this posterior): it converges to the same
    /// estimate in fewer steps.
    public func model(startingFrom start: OutputLengthModel?) -> OutputLengthModel {
        let samples = self.samples
        guard !samples.isEmpty else { return prior }
        var mu = start?.mu ?? prior.mu
        var sigma = max(start?.sigma ?? prior.sigma, 0.05)
        let w = priorWeight
        // Uncensored samples and the prior add the same sums in every iteration: summed once.
        var fixedSum = w * prior.mu
        var fixedSquares = w * (prior.sigma * prior.sigma + prior.mu * prior.mu)
        var censored: [Double] = []
        for sample in samples {
            if sample.censored {
                censored.append(sample.logTokens)
            } else {
                fixedSum += sample.logTokens
                fixedSquares += sample.logTokens * sample.logTokens
            }
        }
        let n = w + Double(samples.count)
        for _ in 0..<30 {
            var sum = fixedSum
            var sumSquares = fixedSquares
            for logTokens in censored {
                // E[x | x > c] and E[x² | x > c] of a normal(μ, σ) truncated below at c.
                let z = (logTokens - mu) / sigma
                let tail = max(1 - Normal.cdf(z), 1e-12)
                let ratio = Normal.pdf(z) / tail
                sum += mu + sigma * ratio
                sumSquares += mu * mu + sigma * sigma + sigma * (logTokens + mu) * ratio
            }
            let nextMu = sum / n
            let nextSigma = max((sumSquares / n - nextMu * nextMu).squareRoot(), 0.05)
            let settled = abs(nextMu - mu) <= 1e-12 * max(abs(mu), 1) && abs(nextSigma - sigma) <= 1e-12 * sigma
            mu = nextMu
            sigma = nextSigma
            // Without censored samples the first step is already the answer.
            if settled || censored.isEmpty { break }
        }
        return OutputLengthModel(mu: mu, sigma: sigma, capTokens: prior.capTokens, source: .learned)
    }
}
