import EdgePlanCore
import Synchronization

/// The runs the daemon admitted on the engine: every plan it returned (with the ledger on) until its report
/// arrives, or until its predicted end and a margin have passed. `Plan` reads it as the load a request joins; `Report`
/// takes a run out of it, with the sequences that ran beside it.
public final class RunLedger: Sendable {
    public struct Entry: Sendable, Equatable {
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
        /// Monotonic seconds: admitted, first decode step, predicted end, deadline (the whole of it: the safety margin
        /// its plan kept is the slack later plans may use).
        public var admittedAt: Double
        public var decodeStartAt: Double
        public var endAt: Double
        public var deadlineAt: Double
        /// Runs its plan made yield: kept so that its plan, made again under its id, still names them.
        public var preempts: [String] = []
        /// Sequences decoding on the engine (its own included) integrated over its life so far, in sequence-seconds.
        var sequenceSeconds = 0.0
        var peakSequences: Int
    }

    /// What ran beside a run, when it leaves the ledger.
    public struct Beside: Sendable, Equatable {
        /// Sequences on the engine while it ran, its own included: time-weighted mean and most at once.
        public var meanSequences: Double
        public var peakSequences: Int
        public var runsAdmittedWith: Int
    }

    private struct State {
        var entries: [Entry] = []
        var lastEventAt = 0.0
        var expired = 0
        var preempted = 0
    }

    private let state = Mutex(State())
    /// A run is forgotten this long after its predicted end (seconds), and at least this share of its predicted time.
    public let marginS: Double
    public let marginShare: Double

    public init(marginS: Double = 2, marginShare: Double = 0.5) {
        self.marginS = marginS
        self.marginShare = marginShare
    }

    /// The load a request planned at `now` joins: each run's remaining prefill and tokens, its deadline and end, as
    /// seconds from now. Runs past their predicted end and margin are forgotten first. A request planned again under
    /// its id (a client that counted its prompt again) does not join its own earlier plan.
    public func load(at now: Double, excluding requestID: String? = nil) -> EngineLoad {
        state.withLock { state in
            Self.advance(&state, to: now, forgetting: { self.expiry(of: $0) })
            return EngineLoad(
                runs: state.entries.filter { $0.requestID != requestID }.map { entry in
                    let decodeS = max(entry.endAt - entry.decodeStartAt, 1e-9)
                    // A run past its predicted end with no report yet is still running, slower than predicted: until
                    // it is reported or forgotten, a quarter of it is taken to be left (caution before optimism).
                    let overdue = now >= entry.endAt
                    let left =
                        overdue
                        ? Self.overdueShare : min(1, max(0, (entry.endAt - max(now, entry.decodeStartAt)) / decodeS))
                    return EngineLoad.Run(
                        requestID: entry.requestID,
                        taskClass: entry.taskClass,
                        model: entry.model,
                        priority: entry.priority,
                        sequences: entry.sequences,
                        prefillLeftS: max(0, entry.decodeStartAt - now),
                        tokensLeft: entry.tokens * left,
                        stepS: entry.stepS,
                        decodePowerW: entry.decodePowerW,
                        deadlineLeftS: entry.deadlineAt - now,
                        predictedEndS: overdue ? Self.overdueShare * decodeS : entry.endAt - now
                    )
                }
            )
        }
    }

    /// Admits a plan made at `now`: its own timeline, the new ends of the runs it delays, and the runs it made yield
    /// (which leave the ledger and are returned, for their holders to be told).
    @discardableResult
    public func admit(
        _ plan: Plan,
        variant: ModelVariant,
        priority: Int,
        at now: Double
    )
        -> [String]
    {
        let tokens = max(plan.percentileOutputTokens, 1)
        let decodeS = variant.decodeLatency.seconds(input: Double(plan.inputTokens), output: tokens)
        let waitS = plan.load?.waitS ?? 0
        var entry = Entry(
            requestID: plan.requestID ?? "",
            taskClass: plan.task,
            priority: priority,
            model: plan.configuration.variant.model,
            sequences: plan.configuration.parallel,
            inputTokens: plan.inputTokens,
            tokens: tokens,
            stepS: decodeS / tokens,
            decodePowerW: variant.decodePower.averagePowerW(tokens: tokens, seconds: decodeS),
            admittedAt: now,
            decodeStartAt: now + waitS + variant.startSeconds(input: plan.inputTokens),
            endAt: now + plan.latencyPercentileS,
            deadlineAt: now + plan.deadlineS,
            peakSequences: plan.configuration.parallel
        )
        let preempted = plan.load?.preempts ?? []
        state.withLock { state in
            Self.advance(&state, to: now, forgetting: { self.expiry(of: $0) })
            let earlier = state.entries.first { $0.requestID == entry.requestID }?.preempts ?? []
            entry.preempts = earlier + preempted.filter { !earlier.contains($0) }
            state.entries.removeAll { preempted.contains($0.requestID) || $0.requestID == entry.requestID }
            state.preempted += preempted.count
            for (id, endS) in plan.load?.delayed ?? [:] {
                if let index = state.entries.firstIndex(where: { $0.requestID == id }) {
                    state.entries[index].endAt = max(state.entries[index].endAt, now + endS)
                }
            }
            state.entries.append(entry)
            let total = state.entries.reduce(0) { $0 + $1.sequences }
            for index in state.entries.indices {
                state.entries[index].peakSequences = max(state.entries[index].peakSequences, total)
            }
        }
        return preempted
    }

    /// The runs an admitted plan made yield, by its request id (empty when none, or when it is not in the ledger).
    public func preempts(of requestID: String) -> [String] {
        state.withLock { state in state.entries.first { $0.requestID == requestID }?.preempts ?? [] }
    }

    /// Takes a run out of the ledger without a report: a request planned again under its id and refused, which its
    /// client will not run.
    public func withdraw(_ requestID: String, at now: Double) {
        _ = finish(requestID, at: now)
    }

    /// Takes a reported run out of the ledger; what ran beside it, or nil when it was not (or no longer) there.
    public func finish(_ requestID: String, at now: Double) -> Beside? {
        state.withLock { state in
            Self.advance(&state, to: now, forgetting: { self.expiry(of: $0) })
            guard let index = state.entries.firstIndex(where: { $0.requestID == requestID }) else { return nil }
            let entry = state.entries.remove(at: index)
            let lived = max(now - entry.admittedAt, 1e-9)
            return Beside(
                meanSequences: max(Double(entry.sequences), entry.sequenceSeconds / lived),
                peakSequences: entry.peakSequences,
                runsAdmittedWith: state.entries.count
            )
        }
    }

    /// The ledger as it stands, for Status and the metrics.
    public func snapshot(at now: Double) -> (entries: [Entry], expired: Int, preempted: Int) {
        state.withLock { state in
            Self.advance(&state, to: now, forgetting: { self.expiry(of: $0) })
            return (state.entries, state.expired, state.preempted)
        }
    }

    /// The share of its decode an unreported run past its predicted end is taken to have left.
    static let overdueShare = 0.25

    private func expiry(of entry: Entry) -> Double {
        entry.endAt + max(marginS, marginShare * (entry.endAt - entry.admittedAt))
    }

    /// Integrates each run's sequences up to `now`, then forgets the runs whose expiry has passed.
    private static func advance(_ state: inout State, to now: Double, forgetting expiry: (Entry) -> Double) {
        let elapsed = max(0, now - state.lastEventAt)
        if elapsed > 0, !state.entries.isEmpty {
            let total = Double(state.entries.reduce(0) { $0 + $1.sequences })
            for index in state.entries.indices {
                let since = max(state.lastEventAt, state.entries[index].admittedAt)
                state.entries[index].sequenceSeconds += total * max(0, now - since)
            }
        }
        state.lastEventAt = max(state.lastEventAt, now)
        let before = state.entries.count
        state.entries.removeAll { expiry($0) < now }
        state.expired += before - state.entries.count
    }
}
