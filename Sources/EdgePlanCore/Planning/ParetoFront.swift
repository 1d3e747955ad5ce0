/// The configurations no other configuration beats on accuracy, percentile latency and percentile energy at once.
public struct ParetoFront: Sendable {
    public let task: String
    public let inputTokens: Int
    /// Which accuracy figure the front ranks by.
    public let ranking: AccuracyRanking
    /// Sorted by the ranking's accuracy (highest first), then energy, then latency: the solver's scan order.
    public let points: [EvaluatedConfiguration]

    public init(
        task: String,
        inputTokens: Int,
        evaluated: [EvaluatedConfiguration],
        ranking: AccuracyRanking = .expected
    ) {
        self.task = task
        self.inputTokens = inputTokens
        self.ranking = ranking
        self.points = Self.nonDominated(evaluated, ranking: ranking)
    }

    /// Whether `a` is at least as good as `b` everywhere and better somewhere.
    public static func dominates(
        _ a: EvaluatedConfiguration,
        _ b: EvaluatedConfiguration,
        ranking: AccuracyRanking = .expected
    ) -> Bool {
        let (x, y) = (ranking.score(a), ranking.score(b))
        return x >= y && a.latencyPercentileS <= b.latencyPercentileS && a.energyPercentileJ <= b.energyPercentileJ
            && (x > y || a.latencyPercentileS < b.latencyPercentileS || a.energyPercentileJ < b.energyPercentileJ)
    }

    /// A front already filtered: `points` in the solver's scan order.
    init(task: String, inputTokens: Int, ranking: AccuracyRanking, front points: [EvaluatedConfiguration]) {
        self.task = task
        self.inputTokens = inputTokens
        self.ranking = ranking
        self.points = points
    }

    static func nonDominated(_ all: [EvaluatedConfiguration], ranking: AccuracyRanking) -> [EvaluatedConfiguration] {
        nonDominatedOrder(
            scores: all.map { ranking.score($0) },
            energy: all.map(\.energyPercentileJ),
            latency: all.map(\.latencyPercentileS)
        )
        .map { all[$0] }
    }

    /// The positions of the non-dominated points among three figures given side by side, in scan order.
    ///
    /// Sorting by accuracy first means a point can only be dominated by one already kept. The sort and the
    /// dominance checks read plain numbers and move indices, not points; ties keep their order.
    static func nonDominatedOrder(scores: [Double], energy: [Double], latency: [Double]) -> [Int] {
        let order = scores.indices.sorted { i, j in
            if scores[i] != scores[j] { return scores[i] > scores[j] }
            if energy[i] != energy[j] { return energy[i] < energy[j] }
            if latency[i] != latency[j] { return latency[i] < latency[j] }
            return i < j
        }
        var kept: [Int] = []
        kept.reserveCapacity(64)
        for index in order {
            // A kept point has at least this accuracy; it dominates (or duplicates) this one when it is no worse on
            // latency and energy: strictly better accuracy, or a strict gain elsewhere, or all three equal.
            let beaten = kept.contains { k in energy[k] <= energy[index] && latency[k] <= latency[index] }
            if !beaten { kept.append(index) }
        }
        return kept
    }
}

/// The accuracy figure a front ranks by: the expected value, or the low end of the 80 % interval (risk-averse).
public enum AccuracyRanking: String, Sendable, Hashable {
    case expected
    case lowerBound = "lower-bound"

    public func score(_ point: EvaluatedConfiguration) -> Double { score(point.estimate) }

    public func score(_ estimate: AccuracyEstimate) -> Double {
        switch self {
        case .expected: estimate.accuracy
        case .lowerBound: estimate.low
        }
    }
}
