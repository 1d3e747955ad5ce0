/// A chosen configuration with its predictions and the request body to send to the engine.
public struct Plan: Sendable, Equatable {
    public var task: String
    public var requestID: String?
    public var configuration: Configuration
    public var inputTokens: Int
    public var deadlineS: Double
    public var energyBudgetJ: Double?
    public var latencyS: Double
    public var latencyPercentileS: Double
    public var percentile: Double
    public var energyJ: Double
    public var accuracy: Double
    public var accuracySource: AccuracySource
    public var costUSDPerMTok: Double
    public var memoryGiB: Double
    public var missProbability: Double
    public var meanOutputTokens: Double
    public var engineRequest: EngineRequest
    public var profileVersion: String
    public var policyVersion: String
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
