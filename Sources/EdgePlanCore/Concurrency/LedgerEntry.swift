/// One admitted run as a ledger keeps it: its plan's engine, sequences, lengths and predicted timeline, on a monotonic
/// clock in seconds. The daemon's ledger and the simulator's both read a request's load from these.
public struct LedgerEntry: Sendable, Equatable {
    public var requestID: String
    public var taskClass: String
    public var priority: Int
    public var model: String
    public var sequences: Int
    public var inputTokens: Int
    /// Decode tokens each sequence is predicted to produce (the policy's percentile).
    public var tokens: Double
    public var stepS: Double
    public var decodePowerW: Double
    /// Admitted, first decode step, predicted end, deadline (the whole of it: the safety margin its plan kept is the
    /// slack later plans may use).
    public var admittedAt: Double
    public var decodeStartAt: Double
    public var endAt: Double
    public var deadlineAt: Double
    /// Runs its plan made yield: kept so that its plan, made again under its id, still names them.
    public var preempts: [String] = []
    /// Sequences decoding on the engine (its own included) integrated over its life so far, in sequence-seconds.
    public var sequenceSeconds = 0.0
    public var peakSequences: Int

    /// The entry of a plan admitted at `now` on `variant`, at the task class's `priority`.
    public init(plan: Plan, variant: ModelVariant, priority: Int, at now: Double) {
        let tokens = max(plan.percentileOutputTokens, 1)
        let decodeS = variant.decodeLatency.seconds(input: Double(plan.inputTokens), output: tokens)
        requestID = plan.requestID ?? ""
        taskClass = plan.task
        self.priority = priority
        model = plan.configuration.variant.model
        sequences = plan.configuration.parallel
        inputTokens = plan.inputTokens
        self.tokens = tokens
        // A request's own k samples step as they measured alone (``ModelVariant/ownStepFactor(_:curve:)``).
        stepS = decodeS / tokens * variant.ownStepFactor(plan.configuration.parallel, curve: variant.engineCurve)
        decodePowerW = variant.decodePower.averagePowerW(tokens: tokens, seconds: decodeS)
        admittedAt = now
        decodeStartAt = now + (plan.load?.waitS ?? 0) + variant.startSeconds(input: plan.inputTokens)
        endAt = now + plan.latencyPercentileS
        deadlineAt = now + plan.deadlineS
        peakSequences = plan.configuration.parallel
    }

    /// The share of its decode an unreported run past its predicted end is taken to have left.
    public static let overdueShare = 0.25

    /// What is left of it at `now`, as the load a new request joins: its remaining prefill and tokens, its deadline
    /// and end, in seconds from now. A run past its predicted end with no report yet is still running, slower than
    /// predicted: until it is reported or forgotten, a quarter of it is taken to be left (caution before optimism).
    public func loadRun(at now: Double) -> EngineLoad.Run {
        let decodeS = max(endAt - decodeStartAt, 1e-9)
        let overdue = now >= endAt
        let left = overdue ? Self.overdueShare : min(1, max(0, (endAt - max(now, decodeStartAt)) / decodeS))
        return EngineLoad.Run(
            requestID: requestID,
            taskClass: taskClass,
            model: model,
            priority: priority,
            sequences: sequences,
            prefillLeftS: max(0, decodeStartAt - now),
            tokensLeft: tokens * left,
            stepS: stepS,
            decodePowerW: decodePowerW,
            deadlineLeftS: deadlineAt - now,
            predictedEndS: overdue ? Self.overdueShare * decodeS : endAt - now
        )
    }
}

/// The runs admitted on an engine, as values: what the daemon's ledger holds under its lock, and what the simulator
/// keeps for a policy with the ledger on. A run is forgotten `marginS` (at least `marginShare` of its predicted time)
/// after its predicted end.
public struct AdmittedRuns: Sendable, Equatable {
    public private(set) var entries: [LedgerEntry] = []
    public private(set) var expired = 0
    public private(set) var preempted = 0
    private var lastEventAt = 0.0
    public let marginS: Double
    public let marginShare: Double

    /// What ran beside a run, when it leaves.
    public struct Beside: Sendable, Equatable {
        /// Sequences on the engine while it ran, its own included: time-weighted mean and most at once.
        public var meanSequences: Double
        public var peakSequences: Int
        public var runsAdmittedWith: Int
    }

    public init(marginS: Double = 2, marginShare: Double = 0.5) {
        self.marginS = marginS
        self.marginShare = marginShare
    }

    /// The load a request planned at `now` joins (runs past their expiry forgotten first); a request planned again
    /// under its id does not join its own earlier plan.
    public mutating func load(at now: Double, excluding requestID: String? = nil) -> EngineLoad {
        advance(to: now)
        return EngineLoad(runs: entries.filter { $0.requestID != requestID }.map { $0.loadRun(at: now) })
    }

    /// Admits `entry` at `now`: the plan's new ends for the runs it delays, and the runs it made yield (which leave
    /// and are returned, for their holders to be told).
    @discardableResult
    public mutating func admit(_ entry: LedgerEntry, load: PlanLoad?, at now: Double) -> [String] {
        var entry = entry
        let preemptedNow = load?.preempts ?? []
        advance(to: now)
        let earlier = entries.first { $0.requestID == entry.requestID }?.preempts ?? []
        entry.preempts = earlier + preemptedNow.filter { !earlier.contains($0) }
        entries.removeAll { preemptedNow.contains($0.requestID) || $0.requestID == entry.requestID }
        preempted += preemptedNow.count
        for (id, endS) in load?.delayed ?? [:] {
            if let index = entries.firstIndex(where: { $0.requestID == id }) {
                entries[index].endAt = max(entries[index].endAt, now + endS)
            }
        }
        entries.append(entry)
        let total = entries.reduce(0) { $0 + $1.sequences }
        for index in entries.indices { entries[index].peakSequences = max(entries[index].peakSequences, total) }
        return preemptedNow
    }

    /// Takes a run out; what ran beside it, or nil when it was not (or no longer) there.
    public mutating func finish(_ requestID: String, at now: Double) -> Beside? {
        advance(to: now)
        guard let index = entries.firstIndex(where: { $0.requestID == requestID }) else { return nil }
        let entry = entries.remove(at: index)
        let lived = max(now - entry.admittedAt, 1e-9)
        return Beside(
            meanSequences: max(Double(entry.sequences), entry.sequenceSeconds / lived),
            peakSequences: entry.peakSequences,
            runsAdmittedWith: entries.count
        )
    }

    /// The runs an admitted plan made yield, by its request id.
    public func preempts(of requestID: String) -> [String] {
        entries.first { $0.requestID == requestID }?.preempts ?? []
    }

    /// Integrates each run's sequences up to `now`, then forgets the runs whose expiry has passed.
    public mutating func advance(to now: Double) {
        let elapsed = max(0, now - lastEventAt)
        if elapsed > 0, !entries.isEmpty {
            let total = Double(entries.reduce(0) { $0 + $1.sequences })
            for index in entries.indices {
                let since = max(lastEventAt, entries[index].admittedAt)
                entries[index].sequenceSeconds += total * max(0, now - since)
            }
        }
        lastEventAt = max(lastEventAt, now)
        let before = entries.count
        let (marginS, marginShare) = (self.marginS, self.marginShare)
        entries.removeAll { Self.expiry(of: $0, marginS: marginS, marginShare: marginShare) < now }
        expired += before - entries.count
    }

    private static func expiry(of entry: LedgerEntry, marginS: Double, marginShare: Double) -> Double {
        entry.endAt + max(marginS, marginShare * (entry.endAt - entry.admittedAt))
    }
}
