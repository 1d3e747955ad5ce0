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

    public var accuracy: Double { estimate.accuracy }
    public var accuracySource: AccuracySource { estimate.source }
    public var meanOutputTokens: Double { outputLength.meanTokens }
}

/// Which limit a request could not meet, and the closest configuration.
public struct Infeasibility: Sendable, Equatable {
    public enum Limit: String, Sendable, Equatable {
        case deadline
        case energyBudget
        case minAccuracy
        case memory
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
}

/// The planner's answer: a plan or a structured reason why none exists.
public enum PlanOutcome: Sendable, Equatable {
    case plan(Plan)
    case infeasible(Infeasibility)
}
