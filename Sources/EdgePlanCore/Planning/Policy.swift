/// What to optimize.
public enum Objective: String, Sendable, CaseIterable, Hashable, Codable {
    /// Highest expected accuracy within the limits; ties go to lower energy, then lower latency.
    case maxAccuracy = "max-accuracy"
    /// Highest low end of the accuracy's 80 % interval: risk-averse tasks prefer what is known to work.
    case maxAccuracyLowerBound = "max-accuracy-lower-bound"
    /// Lowest energy at or above a minimum accuracy.
    case minEnergy = "min-energy"

    /// The accuracy figure the front is ranked by.
    public var ranking: AccuracyRanking { self == .maxAccuracyLowerBound ? .lowerBound : .expected }
}

/// Operator constraints for one task class.
public struct TaskPolicy: Sendable, Equatable, Hashable {
    /// The benchmark whose accuracy tables give this class its prior (nil: the class is that benchmark).
    public var like: String?
    /// Pseudo-observations the prior counts as when reports arrive.
    public var priorWeight: Double
    public var defaultDeadlineS: Double?
    public var defaultEnergyBudgetJ: Double?
    /// Prompt tokens when a request gives none (nil: the benchmark's typical length).
    public var defaultInputTokens: Int?
    public var allowedModels: Set<String>?
    public var allowedQuantizations: Set<Quantization>?
    public var allowedModes: Set<LengthMode>?
    public var maxParallel: Int
    /// The accuracy floor: no plan predicted below it is returned. Requests may raise it, never lower it.
    public var minAccuracy: Double
    /// Where set and the task has answer options, the floor is at least chance (one in the options) plus this
    /// margin: a plan no better than guessing is no plan. On by default (two points); nil turns it off.
    public var chanceMargin: Double?
    public var objective: Objective
    /// Where the engine is shared (the ledger on): a request of higher priority may make admitted runs of lower
    /// priority yield; equal or higher priority is never preempted.
    public var priority: Int = 0
    /// Smallest parallel-sampling factor: a class that always votes over at least this many samples.
    public var minParallel: Int = 1
    /// Share of the deadline this class keeps in reserve, in place of the global one: a long task that leaves room
    /// for reactive ones beside it on a shared engine keeps more.
    public var safetyMargin: Double? = nil

    /// Default floor: a plan that is right less than one time in twenty is no plan.
    public static let defaultMinAccuracy = 0.05
    public static let defaultPriorWeight = 20.0
    /// Default margin over chance: a four-option task needs a predicted 27 % before a plan is returned.
    public static let defaultChanceMargin = 0.02

    public init(
        like: String? = nil,
        priorWeight: Double = TaskPolicy.defaultPriorWeight,
        defaultDeadlineS: Double? = nil,
        defaultEnergyBudgetJ: Double? = nil,
        defaultInputTokens: Int? = nil,
        allowedModels: Set<String>? = nil,
        allowedQuantizations: Set<Quantization>? = nil,
        allowedModes: Set<LengthMode>? = nil,
        maxParallel: Int = 64,
        minAccuracy: Double = TaskPolicy.defaultMinAccuracy,
        chanceMargin: Double? = TaskPolicy.defaultChanceMargin,
        objective: Objective = .maxAccuracy
    ) {
        self.like = like
        self.priorWeight = priorWeight
        self.defaultDeadlineS = defaultDeadlineS
        self.defaultEnergyBudgetJ = defaultEnergyBudgetJ
        self.defaultInputTokens = defaultInputTokens
        self.allowedModels = allowedModels
        self.allowedQuantizations = allowedQuantizations
        self.allowedModes = allowedModes
        self.maxParallel = maxParallel
        self.minAccuracy = minAccuracy
        self.chanceMargin = chanceMargin
        self.objective = objective
    }

    /// The accuracy floor for a task with `answerOptions` options: the policy's floor, and chance plus the margin
    /// where one is set (then chance is returned too).
    public func accuracyFloor(answerOptions: Int) -> (floor: Double, chance: Double?) {
        guard let chanceMargin, answerOptions >= 2 else { return (minAccuracy, nil) }
        let chance = 1 / Double(answerOptions)
        return (min(1, max(minAccuracy, chance + chanceMargin)), chance)
    }

    /// Whether the policy lets this configuration run.
    public func allows(_ configuration: Configuration) -> Bool {
        if let allowedModels, !allowedModels.contains(configuration.variant.model) { return false }
        if let allowedQuantizations, !allowedQuantizations.contains(configuration.variant.quantization) { return false }
        if let allowedModes, !allowedModes.contains(configuration.mode) { return false }
        return configuration.parallel <= maxParallel
    }
}

/// Whether the planner sometimes tries a configuration other than the greedy best, to learn about it.
public enum Exploration: Sendable, Equatable, Hashable {
    case off
    /// Thompson sampling among front points whose expected accuracy is within `maxLoss` of the best, on a share
    /// `rate` of the plans (the rest are greedy): a plan gives up at most `maxLoss`, and `rate × maxLoss` on average.
    case thompson(maxLoss: Double, rate: Double)

    /// The expected accuracy given up per plan, at most.
    public var expectedLossCap: Double {
        switch self {
        case .off: 0
        case let .thompson(maxLoss, rate): maxLoss * rate
        }
    }
}

/// How reports teach the planner.
public struct LearningPolicy: Sendable, Equatable, Hashable {
    /// Plans remembered by request id, so reports can name only the id (oldest forgotten first).
    public var rememberedPlans: Int
    /// Outcomes one peer (user id) may contribute to one model-and-mode group: its influence is bounded.
    public var maxEvidencePerPeer: Int
    /// A peer whose reports show fewer than this share of the successes its plans predicted (over 30 or more
    /// reports) is ignored: reporting only failures cannot steer the robot onto a useless model.
    public var minPlausibleSuccessRatio: Double

    /// Optimism moves slowly and not far unless corroborated: a group's learned accuracy may rise above its prior by
    /// at most `optimismPointsPerHour` (a fraction) per hour since its first report and `maxOptimismPoints` in all,
    /// and its learned output lengths (mean and p95) are not believed below the prior's, until `corroboratingPeers`
    /// peers have each reported `corroboratingOutcomes` outcomes of it. Caution (lower accuracy, longer outputs)
    /// applies at once.
    public var optimismPointsPerHour: Double
    public var maxOptimismPoints: Double
    public var corroboratingPeers: Int
    public var corroboratingOutcomes: Int

    public init(
        rememberedPlans: Int = 65_536,
        maxEvidencePerPeer: Int = 400,
        minPlausibleSuccessRatio: Double = 0.25,
        optimismPointsPerHour: Double = 0.02,
        maxOptimismPoints: Double = 0.05,
        corroboratingPeers: Int = 2,
        corroboratingOutcomes: Int = 5
    ) {
        self.rememberedPlans = rememberedPlans
        self.maxEvidencePerPeer = maxEvidencePerPeer
        self.minPlausibleSuccessRatio = minPlausibleSuccessRatio
        self.optimismPointsPerHour = optimismPointsPerHour
        self.maxOptimismPoints = maxOptimismPoints
        self.corroboratingPeers = corroboratingPeers
        self.corroboratingOutcomes = corroboratingOutcomes
    }
}

/// What the daemon writes to the journal: a level, and how many decisions it writes.
public struct JournalPolicy: Sendable, Equatable, Hashable {
    /// Severity levels, most verbose first (syslog's, as swift-log names them).
    public enum Level: String, Sendable, Equatable, Hashable, CaseIterable, Comparable {
        case trace, debug, info, notice, warning, error, critical
        public static func < (a: Level, b: Level) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
    }

    /// Entries below this level are not written.
    public var level: Level
    /// One decision in this many is journaled (1: every one); the rest are counted in the metrics, so journald's
    /// rate limit never drops decisions silently.
    public var decisionsEvery: Int

    public init(level: Level = .info, decisionsEvery: Int = 1) {
        self.level = level
        self.decisionsEvery = decisionsEvery
    }
}

/// Which latency a plan is judged at.
public enum LatencyBasis: String, Sendable, Equatable, Hashable, CaseIterable {
    /// The policy's percentile of the longest sample (the default).
    case percentile
    /// The mean, as the paper plans (a baseline: it misses deadlines whenever lengths run long).
    case mean
}

/// Who may report outcomes (and so teach the daemon): user and group names or numeric ids. Root and the daemon's
/// own user always may; without `groups`, the daemon's own group may.
public struct ReportingPolicy: Sendable, Equatable, Hashable {
    public var users: [String]
    public var groups: [String]?
    /// Reports one peer may send a second on average (bursts of twice as many); the rest are dropped and counted.
    public var maxReportsPerSecond: Double

    public init(users: [String] = [], groups: [String]? = nil, maxReportsPerSecond: Double = 1000) {
        self.users = users
        self.groups = groups
        self.maxReportsPerSecond = maxReportsPerSecond
    }
}

/// Where this robot's fleet store is and who the robot is there. Absent: the robot learns alone.
/// The password is never in the policy: it is read from `passwordFile`, or from the `fleet-password` credential
/// that systemd's `LoadCredential=` puts in `$CREDENTIALS_DIRECTORY`.
public struct FleetPolicy: Sendable, Equatable, Hashable {
    /// A host name or address, or a directory holding PostgreSQL's Unix socket (a path starting with `/`).
    public var host: String
    public var port: Int
    public var database: String
    /// The robot's database role; also its id in the fleet unless `robotID` says otherwise.
    public var user: String
    public var passwordFile: String?
    /// This robot's id (default: the machine id) and its device class (default: the profile's device).
    public var robotID: String?
    public var deviceClass: String?
    /// TLS: `prefer` (use it where the server offers it), `require`, or `disable`. A Unix socket never uses it.
    public var tls: String
    /// PEM file of the certificate authorities the server's certificate must chain to (a fleet's own CA); nil: the
    /// system's. The certificate and the host name are always verified.
    public var tlsCAFile: String?
    /// A client certificate (PEM) to log in with, where the server authenticates robots by certificate; its key
    /// from `tlsKeyFile`, or from the `fleet-key` credential in `$CREDENTIALS_DIRECTORY`.
    public var tlsCertFile: String?
    public var tlsKeyFile: String?
    /// Runs and outcomes sent in one transaction.
    public var batchSize: Int

    public init(
        host: String,
        port: Int = 5432,
        database: String = "edgeplan_fleet",
        user: String,
        passwordFile: String? = nil,
        robotID: String? = nil,
        deviceClass: String? = nil,
        tls: String = "prefer",
        tlsCAFile: String? = nil,
        tlsCertFile: String? = nil,
        tlsKeyFile: String? = nil,
        batchSize: Int = 500
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.passwordFile = passwordFile
        self.robotID = robotID
        self.deviceClass = deviceClass
        self.tls = tls
        self.tlsCAFile = tlsCAFile
        self.tlsCertFile = tlsCertFile
        self.tlsKeyFile = tlsKeyFile
        self.batchSize = batchSize
    }
}

/// The operator's policy: global settings and per-task-class constraints.
public struct Policy: Sendable, Equatable {
    /// Profile directory to load; nil means the bundled profile.
    public var profileDirectory: String?
    /// Latency (and energy) percentile plans are judged at (0.95 = p95).
    public var latencyPercentile: Double
    /// Fraction of the deadline kept in reserve.
    public var safetyMargin: Double
    /// Parallel factors the solver considers.
    public var parallelFactors: [Int]
    public var explore: Exploration
    public var latencyBasis: LatencyBasis = .percentile
    /// The engine the robot runs plans on: its capability record shapes every plan's request body.
    public var engine: EngineKind = .vllm
    /// Whether the daemon keeps a ledger of the plans it returned until their reports (or their predicted end and a
    /// margin) and plans each request against what already runs on the engine.
    public var ledger = false
    /// Where each model's engine listens (`http://HOST:PORT` or `unix:/PATH`), by `MODEL/QUANTIZATION`, `MODEL` or
    /// `default` (any other model: one engine, or one llama-server in router mode that routes by the request's
    /// model). Every plan names its endpoint, and `ask` and the Python client's `run()` send it there.
    public var endpoints: [String: String] = [:]

    /// The endpoint a configuration of `variant` runs on, and the key that named it; nil where the policy maps none.
    public func endpoint(for variant: VariantID) -> (url: String, key: String)? {
        for key in ["\(variant.model)/\(variant.quantization.rawValue)", variant.model, "default"] {
            if let url = endpoints[key] { return (url, key) }
        }
        return nil
    }

    /// Whether a class is offered thinking-budget runs that no table measured: it lists the mode, and the engine
    /// enforces a budget.
    public func modelsThinkingBudget(_ task: TaskPolicy) -> Bool {
        task.allowedModes?.contains(.thinkingBudget) == true && EngineCapabilities.of(engine).thinkingBudgetField != nil
    }
    public var learning: LearningPolicy
    public var journal = JournalPolicy()
    public var reporting = ReportingPolicy()
    /// The fleet this robot belongs to, if any.
    public var fleet: FleetPolicy?
    public var defaultTask: TaskPolicy
    public var tasks: [String: TaskPolicy]
    public var version: String

    public init(
        profileDirectory: String? = nil,
        latencyPercentile: Double = 0.95,
        safetyMargin: Double = 0.05,
        parallelFactors: [Int] = [1, 2, 4, 8, 16, 32, 64],
        explore: Exploration = .off,
        learning: LearningPolicy = LearningPolicy(),
        defaultTask: TaskPolicy = TaskPolicy(),
        tasks: [String: TaskPolicy] = [:],
        version: String = "builtin"
    ) {
        self.profileDirectory = profileDirectory
        self.latencyPercentile = latencyPercentile
        self.safetyMargin = safetyMargin
        self.parallelFactors = parallelFactors
        self.explore = explore
        self.learning = learning
        self.defaultTask = defaultTask
        self.tasks = tasks
        self.version = version
    }

    /// The constraints for a task class: its own section, or the default one.
    public func task(_ name: String) -> TaskPolicy { tasks[name] ?? defaultTask }

    /// The share of the deadline a task class keeps in reserve: its own, or the global one.
    public func safetyMargin(of name: String) -> Double { task(name).safetyMargin ?? safetyMargin }

    /// The benchmark table behind a task class.
    public func benchmark(of name: String) -> String { tasks[name]?.like ?? name }
}
