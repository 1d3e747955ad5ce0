/// The configurations no other configuration beats on accuracy, percentile latency and percentile energy at once.
public struct ParetoFront: Sendable {
    public let task: String
    public let inputTokens: Int
    /// Which accuracy figure the front ranks by.
    public let ranking: AccuracyRanking
    /// Sorted by the ranking's accuracy (highest first), then energy, then latency: the solver's scan order.
    public let points: [EvaluatedConfiguration]

    public init(task: String, inputTokens: Int, evaluated: [EvaluatedConfiguration], ranking: AccuracyRanking = .expected) {
        self.task = task
        self.inputTokens = inputTokens
        self.ranking = ranking
        self.points = Self.nonDominated(evaluated, ranking: ranking)
    }

    /// Whether `a` is at least as good as `b` everywhere and better somewhere.
    public static func dominates(_ a: EvaluatedConfiguration, _ b: EvaluatedConfiguration, ranking: AccuracyRanking = .expected) -> Bool {
        let (x, y) = (ranking.score(a), ranking.score(b))
        return x >= y && a.latencyPercentileS <= b.latencyPercentileS && a.energyPercentileJ <= b.energyPercentileJ
            && (x > y || a.latencyPercentileS < b.latencyPercentileS || a.energyPercentileJ < b.energyPercentileJ)
    }

    /// Sorting by accuracy first means a point can only be dominated by one already kept.
    static func nonDominated(_ all: [EvaluatedConfiguration], ranking: AccuracyRanking) -> [EvaluatedConfiguration] {
        let sorted = all.sorted { a, b in
            let (x, y) = (ranking.score(a), ranking.score(b))
            if x != y { return x > y }
            if a.energyPercentileJ != b.energyPercentileJ { return a.energyPercentileJ < b.energyPercentileJ }
            return a.latencyPercentileS < b.latencyPercentileS
        }
        var kept: [EvaluatedConfiguration] = []
        kept.reserveCapacity(64)
        for point in sorted {
            if !kept.contains(where: { dominates($0, point, ranking: ranking) || (ranking.score($0) == ranking.score(point) && $0.energyPercentileJ == point.energyPercentileJ && $0.latencyPercentileS == point.latencyPercentileS) }) {
                kept.append(point)
            }
        }
        return kept
    }
}

/// The accuracy figure a front ranks by: the expected value, or the low end of the 80 % interval (risk-averse).
public enum AccuracyRanking: String, Sendable, Hashable {
    case expected
    case lowerBound = "lower-bound"

    public func score(_ point: EvaluatedConfiguration) -> Double {
        switch self {
        case .expected: point.estimate.accuracy
        case .lowerBound: point.estimate.low
        }
    }
}
