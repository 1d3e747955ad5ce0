/// A chosen configuration with its predictions and the request body to send to the engine.
public struct Plan: Sendable, Equatable {
    public var task: String
    public var requestID: String?
    public var configuration: Configuration
    public var inputTokens: Int
    public var deadlineS: Double
    public var energyBudgetJ: Double?
    /// Latency at the mean output length, and when the longest sample is at the policy's percentile.
    public var latencyS: Double
    public var latencyPercentileS: Double
    public var percentile: Double
    /// Energy at the mean output length, and (checked against the budget) at the percentile.
    public var energyJ: Double
    public var energyPercentileJ: Double
    public var estimate: AccuracyEstimate
    public var costUSDPerMTok: Double
    public var memoryGiB: Double
    public var missProbability: Double
    public var outputLength: OutputLengthModel
    public var percentileOutputTokens: Double
    public var objective: Objective
    /// Whether exploration picked this instead of the greedy best, and the expected accuracy it gave up for it.
    public var explored = false
    public var explorationLoss = 0.0
    public var engineRequest: EngineRequest
    public var profileVersion: String
    public var policyVersion: String
    /// The load it was planned against, where other runs were admitted on the engine: its latency and energy above
    /// are then predicted beside them.
    public var load: PlanLoad? = nil

    public var accuracy: Double { estimate.accuracy }
    public var accuracySource: AccuracySource { estimate.source }
    public var meanOutputTokens: Double { outputLength.meanTokens }
}

/// What a plan assumed of the engine it joins: the sequences of runs already admitted, what it waits and runs
/// beside, its latency on an idle engine, and the admitted runs it delays or makes yield.
public struct PlanLoad: Sendable, Equatable {
    public var runsBeside: Int
    public var sequencesBeside: Int
    public var peakSequences: Int
    public var meanSequences: Double
    public var waitS: Double
    /// The same configuration's latency at the percentile on an idle engine.
    public var idleLatencyPercentileS: Double
    /// Lower-priority runs that must yield for it (their holders are told to stop them).
    public var preempts: [String]
    /// Admitted runs it makes later, by request id, with their new predicted end (seconds from the plan).
    public var delayed: [String: Double]

    public init(
        runsBeside: Int,
        sequencesBeside: Int,
        peakSequences: Int,
        meanSequences: Double,
        waitS: Double,
        idleLatencyPercentileS: Double,
        preempts: [String],
        delayed: [String: Double]
    ) {
        self.runsBeside = runsBeside
        self.sequencesBeside = sequencesBeside
        self.peakSequences = peakSequences
        self.meanSequences = meanSequences
        self.waitS = waitS
        self.idleLatencyPercentileS = idleLatencyPercentileS
        self.preempts = preempts
        self.delayed = delayed
    }
}

/// Which limit a request could not meet, and the closest configuration.
public struct Infeasibility: Sendable, Equatable {
    public enum Limit: String, Sendable, Equatable {
        case deadline
        case energyBudget
        case minAccuracy
        case memory
        /// The prompt leaves no room for an answer in the context: the model's, or the engine's per sequence.
        case context
        /// The engine is busy with admitted runs: the request would miss its deadline beside them, or push one of
        /// equal or higher priority past its own.
        case busy
        case policy
    }

    public var task: String
    public var limit: Limit
    public var message: String
    /// The configuration that comes closest, when any configuration exists.
    public var closest: EvaluatedConfiguration?
    /// How far the closest one misses, in the limit's unit (seconds, joules, accuracy fraction).
    public var missBy: Double?
    public var requested: Double?
    /// For a busy engine: the admitted run after whose predicted end the request would fit, and how many seconds
    /// from now that is.
    public var fitsAfter: (requestID: String, inS: Double)? = nil

    public static func == (a: Infeasibility, b: Infeasibility) -> Bool {
        a.task == b.task && a.limit == b.limit && a.message == b.message && a.closest == b.closest
            && a.missBy == b.missBy && a.requested == b.requested && a.fitsAfter?.requestID == b.fitsAfter?.requestID
            && a.fitsAfter?.inS == b.fitsAfter?.inS
    }
}

/// The planner's answer: a plan or a structured reason why none exists.
public enum PlanOutcome: Sendable, Equatable {
    case plan(Plan)
    case infeasible(Infeasibility)
}
