import Foundation

/// What reports say about one task class × model-and-mode group: a posterior over a shift `δ` of the
/// single-sample accuracy in logit space, `p(b) = logistic(logit p₀(b) + δ)`, where `p₀(b)` is the profile's
/// estimate at budget `b`.
///
/// One shift for the whole group shares evidence across neighbouring budgets, and the vote model links a
/// report of a `k`-sample vote to the same single-sample accuracy, so what is learned at one budget and
/// parallel factor moves its neighbours too. The posterior lives on a fixed grid, so updates are exact and
/// replaying the same reports gives the same numbers.
public struct AccuracyPosterior: Sendable, Equatable {
    /// Grid of logit shifts, −6…6 in steps of 0.1.
    public static let grid: [Double] = (0...120).map { Double($0) / 10 - 6 }

    /// What one peer has reported: its log-likelihood per grid point and its counts.
    public struct PeerEvidence: Sendable, Equatable {
        public var logLikelihood = [Double](repeating: 0, count: AccuracyPosterior.grid.count)
        public var observations = 0
        public var successes = 0

        mutating func add(_ outcome: [Double], correct: Bool) {
            logLikelihood.withUnsafeMutableBufferPointer { total in
                for index in total.indices { total[index] += outcome[index] }
            }
            observations += 1
            if correct { successes += 1 }
        }
    }

    /// Log prior weight per grid point (unnormalised).
    public private(set) var logPrior: [Double]
    /// Evidence kept per peer, so one peer's influence can be bounded or withdrawn.
    public private(set) var evidence: [UInt32: PeerEvidence] = [:]
    /// Peers whose evidence does not count (found implausible).
    public var ignoredPeers: Set<UInt32> = []

    /// Log posterior weight per grid point: the prior plus every counted peer's evidence.
    public var logWeights: [Double] {
        var total = logPrior
        for (peer, evidence) in evidence where !ignoredPeers.contains(peer) {
            for index in total.indices { total[index] += evidence.logLikelihood[index] }
        }
        return total
    }

    /// Reports counted in the posterior.
    public var observations: Int {
        evidence.filter { !ignoredPeers.contains($0.key) }.map(\.value.observations).reduce(0, +)
    }
    public var successes: Int { evidence.filter { !ignoredPeers.contains($0.key) }.map(\.value.successes).reduce(0, +) }

    /// A prior worth `priorWeight` observations around a single-sample accuracy of `p₀`.
    public init(priorWeight: Double, around p0: Double) {
        let p = min(max(p0, 0.01), 0.99)
        // A Beta prior of weight w has logit standard deviation of about 1 / sqrt(w p (1 − p)).
        let sd = 1 / max(priorWeight * p * (1 - p), 1e-3).squareRoot()
        logPrior = Self.grid.map { -0.5 * ($0 / sd) * ($0 / sd) }
    }

    /// One reported outcome, with the configuration's accuracy at every grid point given (see ``votedGrid(p0:vote:)``).
    public mutating func observe(correct: Bool, votedGrid: [Double], peer: UInt32) {
        observe(correct: correct, logLikelihood: Self.logLikelihood(votedGrid, correct: correct), peer: peer)
    }

    /// One reported outcome, with the log-likelihood of that outcome at every grid point given.
    public mutating func observe(correct: Bool, logLikelihood: [Double], peer: UInt32) {
        // In place: the peer's evidence is neither copied out nor back.
        evidence[peer, default: PeerEvidence()].add(logLikelihood, correct: correct)
    }

    /// The log-likelihood at every grid point of a correct (or wrong) answer, from a voted grid.
    public static func logLikelihood(_ votedGrid: [Double], correct: Bool) -> [Double] {
        votedGrid.map { p in log(min(max(correct ? p : 1 - p, 1e-9), 1)) }
    }

    /// A configuration's accuracy at every grid point: its single-sample prior shifted by each δ, through its vote.
    public static func votedGrid(p0: Double, vote: VoteContext) -> [Double] {
        let base = logit(p0)
        return grid.map { vote.accuracy(logistic(base + $0)) }
    }

    /// The estimate from a summary and a configuration's voted grid: lookups only.
    public static func estimate(_ summary: Summary, votedGrid: [Double]) -> AccuracyEstimate {
        let mean = summary.decileIndices.map { votedGrid[$0] }.reduce(0, +) / Double(summary.decileIndices.count)
        return AccuracyEstimate(
            accuracy: mean,
            low: votedGrid[summary.lowIndex],
            high: votedGrid[summary.highIndex],
            source: .learned,
            observations: summary.observations
        )
    }

    /// Outcomes one peer has contributed.
    public func observations(from peer: UInt32) -> Int { evidence[peer]?.observations ?? 0 }

    /// Normalised posterior weights.
    public var weights: [Double] {
        let logWeights = self.logWeights
        let top = logWeights.max() ?? 0
        let raw = logWeights.map { exp($0 - top) }
        let total = raw.reduce(0, +)
        return raw.map { $0 / total }
    }

    /// The shift at posterior quantile `q`.
    public func quantile(_ q: Double) -> Double { quantiles([q])[0] }

    /// The shifts at several posterior quantiles, from one pass over the weights.
    public func quantiles(_ qs: [Double]) -> [Double] { quantileIndices(qs).map { Self.grid[$0] } }

    /// The grid indices of several posterior quantiles.
    public func quantileIndices(_ qs: [Double]) -> [Int] {
        let weights = self.weights
        return qs.map { q in
            var cumulative = 0.0
            for (index, weight) in weights.enumerated() {
                cumulative += weight
                if cumulative >= q { return index }
            }
            return Self.grid.count - 1
        }
    }

    /// The posterior summarised for estimates: ten decile midpoints and the 10th and 90th percentiles.
    public struct Summary: Sendable {
        public var decileIndices: [Int]
        public var lowIndex: Int
        public var highIndex: Int
        public var observations: Int
        public var deciles: [Double] { decileIndices.map { AccuracyPosterior.grid[$0] } }
        public var low: Double { AccuracyPosterior.grid[lowIndex] }
        public var high: Double { AccuracyPosterior.grid[highIndex] }
    }

    public var summary: Summary {
        let points = quantileIndices((0..<10).map { (Double($0) + 0.5) / 10 } + [0.1, 0.9])
        return Summary(
            decileIndices: Array(points.prefix(10)),
            lowIndex: points[10],
            highIndex: points[11],
            observations: observations
        )
    }

    /// The learned estimate for a configuration whose single-sample prior is `p0`: mean over ten posterior
    /// deciles, and the 80 % interval from the 10th and 90th percentiles (the vote is monotone in `δ`).
    public func estimate(p0: Double, vote: VoteContext) -> AccuracyEstimate {
        Self.estimate(summary, p0: p0, vote: vote)
    }

    public static func estimate(_ summary: Summary, p0: Double, vote: VoteContext) -> AccuracyEstimate {
        let base = logit(p0)
        let mean =
            summary.deciles.map { vote.accuracy(logistic(base + $0)) }.reduce(0, +) / Double(summary.deciles.count)
        return AccuracyEstimate(
            accuracy: mean,
            low: vote.accuracy(logistic(base + summary.low)),
            high: vote.accuracy(logistic(base + summary.high)),
            source: .learned,
            observations: summary.observations
        )
    }

    static func logit(_ p: Double) -> Double {
        let p = min(max(p, 1e-4), 1 - 1e-4)
        return log(p / (1 - p))
    }

    static func logistic(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
}

/// The vote that turns single-sample accuracy into a configuration's accuracy.
public struct VoteContext: Sendable, Equatable {
    public var samples: Int
    public var abstention: Double
    public var concentration: Double
    public var options: Int

    public init(samples: Int, abstention: Double, concentration: Double, options: Int) {
        self.samples = samples
        self.abstention = abstention
        self.concentration = concentration
        self.options = options
    }

    public func accuracy(_ single: Double) -> Double {
        PluralityVote.accuracy(
            single: single,
            samples: samples,
            abstention: abstention,
            concentration: concentration,
            options: options
        )
    }
}
