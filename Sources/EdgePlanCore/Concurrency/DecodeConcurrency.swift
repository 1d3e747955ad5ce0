/// How an engine's decode step grows with the sequences it decodes at once, measured by `profile collect` from the
/// per-token gaps of streamed runs with `b` sequences running, and what a request costs besides its tokens.
///
/// A request of k samples on an idle engine is the case of `b = k`; beside other runs, `b` is its k plus theirs for as
/// long as they run (``EngineTimeline``). Between measured counts the factor is joined linearly; past the largest
/// measured count it is not known, and ``stepFactor(_:)`` says that it extrapolated.
public struct DecodeConcurrency: Sendable, Equatable {
    /// A decode step's time with `b` sequences over one sequence's, by `b` (1 is 1).
    public var stepFactors: [Int: Double] {
        didSet {
            steps = Self.sorted(stepFactors)
            floors = Self.floors(steps)
            neverFaster = Self.rises(steps)
        }
    }
    /// The same, sorted by `b`: what every step of a timeline looks up.
    private var steps: [Point] = []
    /// For each measured count, the least factor at that count or more (curves need not rise everywhere).
    private var floors: [Point] = []
    /// Sequences the engine decodes at once (llama-server's slots); requests beyond them wait.
    public var slots: Int?
    /// A request's fixed cost in seconds, besides its prefill and its decode steps (HTTP, scheduling, the first
    /// sampling): paid once a request, whatever its k.
    public var requestOverheadS: Double
    /// How much slower a decode step is while the engine also processes a prompt (a fraction: 0.5 is 50 %).
    public var prefillInterference: Double
    /// Decode power with `b` sequences over one sequence's, by `b`.
    public var powerFactors: [Int: Double] {
        didSet { powers = Self.sorted(powerFactors.merging([1: 1]) { a, _ in a }) }
    }
    private var powers: [Point] = []
    /// Where the curve comes from (`measured`, with the collection it came from).
    public var source: String
    /// Held-out error of the fit (MAPE of per-token times across b), when it was fitted.
    public var fitMAPEPct: Double?

    public init(
        stepFactors: [Int: Double],
        slots: Int? = nil,
        requestOverheadS: Double = 0,
        prefillInterference: Double = 0,
        powerFactors: [Int: Double] = [:],
        source: String,
        fitMAPEPct: Double? = nil
    ) {
        var factors = stepFactors.filter { $0.key >= 1 && $0.value > 0 && $0.value.isFinite }
        factors[1] = 1
        self.stepFactors = factors
        steps = Self.sorted(factors)
        floors = Self.floors(steps)
        neverFaster = Self.rises(steps)
        self.slots = slots
        self.requestOverheadS = max(0, requestOverheadS)
        self.prefillInterference = max(0, prefillInterference)
        self.powerFactors = powerFactors.filter { $0.key >= 1 && $0.value > 0 && $0.value.isFinite }
        powers = Self.sorted(self.powerFactors.merging([1: 1]) { a, _ in a })
        self.source = source
        self.fitMAPEPct = fitMAPEPct
    }

    /// The largest sequence count measured.
    public var measuredUpTo: Int { stepFactors.keys.max() ?? 1 }

    /// The step factor at `b` sequences, joined linearly between measured counts; past the largest measured count
    /// the last segment's slope continues, and `extrapolated` says so.
    public func stepFactor(_ b: Int) -> (factor: Double, extrapolated: Bool) {
        Self.interpolate(steps, at: max(b, 1))
    }

    /// Decode power at `b` sequences over one sequence's (1 where nothing was measured).
    public func powerFactor(_ b: Int) -> Double {
        powerFactors.isEmpty ? 1 : Self.interpolate(powers, at: max(b, 1)).factor
    }

    /// The least step factor at `b` sequences or more: with at least `b` decoding, no step is faster than this,
    /// even where the measured curve dips at a larger count.
    /// Whether a step never gets faster as sequences are added (every measured factor at least the one before); kept
    /// with the curve, since every plan beside a busy engine asks.
    public private(set) var neverFaster = true

    static func rises(_ sorted: [Point]) -> Bool { zip(sorted, sorted.dropFirst()).allSatisfy { $0.value <= $1.value } }

    public func floorStepFactor(_ b: Int) -> Double {
        let at = stepFactor(b).factor
        guard let index = floors.firstIndex(where: { $0.b > b }) else { return at }
        return min(at, floors[index].value)
    }

    static func floors(_ sorted: [Point]) -> [Point] {
        var floors = sorted
        var least = Double.infinity
        for index in floors.indices.reversed() {
            least = min(least, floors[index].value)
            floors[index].value = least
        }
        return floors
    }

    struct Point: Sendable, Equatable {
        var b: Int
        var value: Double
    }

    static func sorted(_ points: [Int: Double]) -> [Point] {
        points.map { Point(b: $0.key, value: $0.value) }.sorted { $0.b < $1.b }
    }

    static func interpolate(_ sorted: [Point], at b: Int) -> (factor: Double, extrapolated: Bool) {
        guard let last = sorted.last else { return (1, b > 1) }
        if b > last.b {
            guard sorted.count >= 2 else { return (last.value, true) }
            let previous = sorted[sorted.count - 2]
            let slope = max(0, (last.value - previous.value) / Double(last.b - previous.b))
            return (last.value + slope * Double(b - last.b), true)
        }
        guard let upper = sorted.firstIndex(where: { $0.b >= b }) else { return (last.value, false) }
        let high = sorted[upper]
        if high.b == b || upper == 0 { return (high.value, false) }
        let low = sorted[upper - 1]
        let t = Double(b - low.b) / Double(high.b - low.b)
        return (low.value + t * (high.value - low.value), false)
    }
}
