import EdgePlanCore
import Synchronization

/// The runs the daemon admitted on the engine: every plan it returned (with the ledger on) until its report
/// arrives, or until its predicted end and a margin have passed. `Plan` reads it as the load a request joins; `Report`
/// takes a run out of it, with the sequences that ran beside it. The bookkeeping is ``AdmittedRuns`` (the simulator's
/// too), under a lock.
public final class RunLedger: Sendable {
    public typealias Entry = LedgerEntry
    public typealias Beside = AdmittedRuns.Beside

    private let state: Mutex<AdmittedRuns>
    /// A run is forgotten this long after its predicted end (seconds), and at least this share of its predicted time.
    public let marginS: Double
    public let marginShare: Double

    public init(marginS: Double = 2, marginShare: Double = 0.5) {
        self.marginS = marginS
        self.marginShare = marginShare
        state = Mutex(AdmittedRuns(marginS: marginS, marginShare: marginShare))
    }

    /// The load a request planned at `now` joins: each run's remaining prefill and tokens, its deadline and end, as
    /// seconds from now. Runs past their predicted end and margin are forgotten first. A request planned again under
    /// its id (a client that counted its prompt again) does not join its own earlier plan.
    public func load(at now: Double, excluding requestID: String? = nil) -> EngineLoad {
        state.withLock { $0.load(at: now, excluding: requestID) }
    }

    /// Admits a plan made at `now`: its own timeline, the new ends of the runs it delays, and the runs it made yield
    /// (which leave the ledger and are returned, for their holders to be told).
    @discardableResult
    public func admit(_ plan: Plan, variant: ModelVariant, priority: Int, at now: Double) -> [String] {
        let entry = LedgerEntry(plan: plan, variant: variant, priority: priority, at: now)
        return state.withLock { $0.admit(entry, load: plan.load, at: now) }
    }

    /// The runs an admitted plan made yield, by its request id (empty when none, or when it is not in the ledger).
    public func preempts(of requestID: String) -> [String] {
        state.withLock { $0.preempts(of: requestID) }
    }

    /// Takes a run out of the ledger without a report: a request planned again under its id and refused, which its
    /// client will not run.
    public func withdraw(_ requestID: String, at now: Double) {
        _ = finish(requestID, at: now)
    }

    /// Takes a reported run out of the ledger; what ran beside it, or nil when it was not (or no longer) there.
    public func finish(_ requestID: String, at now: Double) -> Beside? {
        state.withLock { $0.finish(requestID, at: now) }
    }

    /// The ledger as it stands, for Status and the metrics.
    public func snapshot(at now: Double) -> (entries: [Entry], expired: Int, preempted: Int) {
        state.withLock { state in
            state.advance(to: now)
            return (state.entries, state.expired, state.preempted)
        }
    }

    /// The share of its decode an unreported run past its predicted end is taken to have left.
    static let overdueShare = LedgerEntry.overdueShare
}
