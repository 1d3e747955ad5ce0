/// The configurations no other configuration beats on accuracy, percentile latency and energy at once.
public struct ParetoFront: Sendable {
    public let task: String
    public let inputTokens: Int
    /// Sorted by accuracy (highest first), then energy, then latency: the solver's scan order.
    public let points: [EvaluatedConfiguration]

    public init(task: String, inputTokens: Int, evaluated: [EvaluatedConfiguration]) {
        self.task = task
        self.inputTokens = inputTokens
        self.points = Self.nonDominated(evaluated)
    }

    /// Whether `a` is at least as good as `b` everywhere and better somewhere.
    public static func dominates(_ a: EvaluatedConfiguration, _ b: EvaluatedConfiguration) -> Bool {
        a.accuracy >= b.accuracy && a.latencyPercentileS <= b.latencyPercentileS && a.energyJ <= b.energyJ
            && (a.accuracy > b.accuracy || a.latencyPercentileS < b.latencyPercentileS || a.energyJ < b.energyJ)
    }

    /// Sorting by accuracy first means a point can only be dominated by one already kept.
    static func nonDominated(_ all: [EvaluatedConfiguration]) -> [EvaluatedConfiguration] {
        let sorted = all.sorted { a, b in
            if a.accuracy != b.accuracy { return a.accuracy > b.accuracy }
            if a.energyJ != b.energyJ { return a.energyJ < b.energyJ }
            return a.latencyPercentileS < b.latencyPercentileS
        }
        var kept: [EvaluatedConfiguration] = []
        kept.reserveCapacity(64)
        for point in sorted {
            if !kept.contains(where: { dominates($0, point) || ($0.accuracy == point.accuracy && $0.energyJ == point.energyJ && $0.latencyPercentileS == point.latencyPercentileS) }) {
                kept.append(point)
            }
        }
        return kept
    }
}
