/// What to optimize.
public enum Objective: String, Sendable, CaseIterable, Hashable, Codable {
    /// Highest accuracy within the limits; ties go to lower energy, then lower latency.
    case maxAccuracy = "max-accuracy"
    /// Lowest energy at or above a minimum accuracy.
    case minEnergy = "min-energy"
}

/// Operator constraints for one task class.
public struct TaskPolicy: Sendable, Equatable, Hashable {
    public var defaultDeadlineS: Double?
    public var defaultEnergyBudgetJ: Double?
    public var allowedModels: Set<String>?
    public var allowedQuantizations: Set<Quantization>?
    public var allowedModes: Set<LengthMode>?
    public var maxParallel: Int
    public var minAccuracy: Double?
    public var objective: Objective

    public init(
        defaultDeadlineS: Double? = nil, defaultEnergyBudgetJ: Double? = nil, allowedModels: Set<String>? = nil,
        allowedQuantizations: Set<Quantization>? = nil, allowedModes: Set<LengthMode>? = nil, maxParallel: Int = 64,
        minAccuracy: Double? = nil, objective: Objective = .maxAccuracy
    ) {
        self.defaultDeadlineS = defaultDeadlineS
        self.defaultEnergyBudgetJ = defaultEnergyBudgetJ
        self.allowedModels = allowedModels
        self.allowedQuantizations = allowedQuantizations
        self.allowedModes = allowedModes
        self.maxParallel = maxParallel
        self.minAccuracy = minAccuracy
        self.objective = objective
    }

    /// Whether the policy lets this configuration run.
    public func allows(_ configuration: Configuration) -> Bool {
        if let allowedModels, !allowedModels.contains(configuration.variant.model) { return false }
        if let allowedQuantizations, !allowedQuantizations.contains(configuration.variant.quantization) { return false }
        if let allowedModes, !allowedModes.contains(configuration.mode) { return false }
        return configuration.parallel <= maxParallel
    }
}

/// The operator's policy: global settings and per-task constraints.
public struct Policy: Sendable, Equatable {
    /// Profile directory to load; nil means the bundled profile.
    public var profileDirectory: String?
    /// Latency percentile plans are judged at (0.95 = p95).
    public var latencyPercentile: Double
    /// Fraction of the deadline kept in reserve.
    public var safetyMargin: Double
    /// Parallel factors the solver considers.
    public var parallelFactors: [Int]
    public var defaultTask: TaskPolicy
    public var tasks: [String: TaskPolicy]
    public var version: String

    public init(
        profileDirectory: String? = nil, latencyPercentile: Double = 0.95, safetyMargin: Double = 0.05,
        parallelFactors: [Int] = [1, 2, 4, 8, 16, 32, 64], defaultTask: TaskPolicy = TaskPolicy(),
        tasks: [String: TaskPolicy] = [:], version: String = "builtin"
    ) {
        self.profileDirectory = profileDirectory
        self.latencyPercentile = latencyPercentile
        self.safetyMargin = safetyMargin
        self.parallelFactors = parallelFactors
        self.defaultTask = defaultTask
        self.tasks = tasks
        self.version = version
    }

    /// The constraints for a task: its own section, or the default one.
    public func task(_ name: String) -> TaskPolicy { tasks[name] ?? defaultTask }
}
