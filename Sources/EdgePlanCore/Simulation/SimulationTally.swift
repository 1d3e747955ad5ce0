import Foundation

/// What happened to the requests of one policy (overall, or of one task class).
public struct SimulationTally: Sendable, Equatable {
    public var requests = 0
    /// Finished within their deadline, queueing included.
    public var onTime = 0
    /// The planner found no configuration within the limits.
    public var infeasible = 0
    /// The deadline had passed while the request waited for the device.
    public var expiredInQueue = 0
    /// On a shared engine: stopped at its deadline mid-run, or made to yield to a higher-priority run.
    public var cut = 0
    public var preempted = 0
    /// Sampled outcomes: answered correctly and on time.
    public var correct = 0
    /// Sum of the true expected accuracy of what ran and finished on time (0 for the rest).
    public var expectedAccuracy = 0.0
    /// Sum of what an oracle that knows the truth would have reached for the same requests.
    public var oracleAccuracy = 0.0
    public var energyJ = 0.0
    public var costUSD = 0.0
    public var tokens = 0.0
    public var waitS = 0.0
    /// Queueing delays in log buckets (1 ms to 10⁶ s, 20 a decade), for percentiles without keeping every wait.
    public var waitHistogram = [Int](repeating: 0, count: 181)

    public init() {}

    /// Adds one request's outcome.
    mutating func add(_ outcome: RequestOutcome) {
        requests += 1
        if outcome.onTime { onTime += 1 }
        if outcome.infeasible { infeasible += 1 }
        if outcome.expiredInQueue { expiredInQueue += 1 }
        if outcome.cut { cut += 1 }
        if outcome.preempted { preempted += 1 }
        if outcome.correct { correct += 1 }
        expectedAccuracy += outcome.expectedAccuracy
        oracleAccuracy += outcome.oracleAccuracy
        energyJ += outcome.energyJ
        costUSD += outcome.costUSD
        tokens += outcome.tokens
        waitS += outcome.waitS
        let bucket = outcome.waitS <= 1e-3 ? 0 : min(180, Int((log10(outcome.waitS) + 3) * 20) + 1)
        waitHistogram[bucket] += 1
    }

    /// The queueing delay below which a share `p` of requests waited (upper edge of its bucket).
    public func waitPercentile(_ p: Double) -> Double {
        let target = Int((Double(requests) * p).rounded(.up))
        var seen = 0
        for (bucket, count) in waitHistogram.enumerated() {
            seen += count
            if seen >= max(target, 1) { return bucket == 0 ? 0.001 : pow(10, Double(bucket) / 20 - 3) }
        }
        return 0
    }

    public var deadlineHitRate: Double { requests > 0 ? Double(onTime) / Double(requests) : 0 }
    public var realizedAccuracy: Double { requests > 0 ? Double(correct) / Double(requests) : 0 }
    public var meanExpectedAccuracy: Double { requests > 0 ? expectedAccuracy / Double(requests) : 0 }
    public var meanRegret: Double { requests > 0 ? (oracleAccuracy - expectedAccuracy) / Double(requests) : 0 }
    public var costUSDPerMTok: Double { tokens > 0 ? costUSD / tokens * 1e6 : 0 }

    public var json: JSONValue {
        .fields([
            "requests": .int(requests), "deadlineHitRate": .number(deadlineHitRate),
            "realizedAccuracy": .number(realizedAccuracy),
            "expectedAccuracy": .number(meanExpectedAccuracy), "regret": .number(meanRegret),
            "infeasible": .int(infeasible), "expiredInQueue": .int(expiredInQueue), "cut": .int(cut),
            "preempted": .int(preempted),
            "energyJ": .number(energyJ), "energyJPerRequest": .number(requests > 0 ? energyJ / Double(requests) : 0),
            "costUsdPerMTok": .number(costUSDPerMTok),
            "queueDelayMeanS": .number(requests > 0 ? waitS / Double(requests) : 0),
            "queueDelayP95S": .number(waitPercentile(0.95)),
        ])
    }
}

/// What happened to one simulated request, as the tallies add it up.
struct RequestOutcome {
    var waitS = 0.0
    var infeasible = false
    var expiredInQueue = false
    var cut = false
    var preempted = false
    var onTime = false
    /// Answered correctly and on time.
    var correct = false
    /// True expected accuracy of what ran, 0 unless it finished on time.
    var expectedAccuracy = 0.0
    var oracleAccuracy = 0.0
    var energyJ = 0.0
    var costUSD = 0.0
    var tokens = 0.0
}

/// Per time window of one policy: for plots over time.
public struct SimulationWindow: Sendable, Equatable {
    public var requests = 0
    public var onTime = 0
    public var correct = 0

    mutating func add(_ outcome: RequestOutcome) {
        requests += 1
        if outcome.onTime { onTime += 1 }
        if outcome.correct { correct += 1 }
    }
}

/// The learned single-sample accuracy of a group whose truth differs from its prior, sampled over time.
public struct LearnedTrace: Sendable, Equatable {
    public var taskClass: String
    public var group: AccuracyModel.Group
    /// The group's configuration whose single-sample accuracy is traced.
    public var configuration: Configuration
    public var truth: Double
    public var prior: Double
    /// (time in seconds, learned estimate, low, high, reports).
    public var points: [(t: Double, accuracy: Double, low: Double, high: Double, reports: Int)] = []

    public static func == (a: LearnedTrace, b: LearnedTrace) -> Bool {
        a.taskClass == b.taskClass && a.group == b.group && a.points.map(\.t) == b.points.map(\.t)
            && a.points.map(\.accuracy) == b.points.map(\.accuracy)
    }
}
