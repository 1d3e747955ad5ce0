import CoreMetrics
import EdgePlanCore
import Foundation
import Logging
import Synchronization

/// Holds the current planner snapshot, swaps it atomically on reload, counts what happened, logs decisions.
///
/// Requests read the snapshot under a lock held only for a pointer copy; a reload builds and warms the new
/// planner first, so requests never wait for it, and a failed reload leaves the last good one in place.
public final class PlannerService: Sendable {
    /// MESSAGE_ID of "plan decided" journal entries.
    public static let planDecidedMessageID = "6f1c5b2a9e8d4c37a1b0f2e3d4c5b6a7"
    /// MESSAGE_ID of "no feasible plan" journal entries.
    public static let noFeasiblePlanMessageID = "0b8e7d6c5a4f4e3d9c2b1a0f9e8d7c6b"
    /// MESSAGE_IDs of "reloaded" and "reload failed" journal entries.
    public static let reloadedMessageID = "4e5f60718293a4b5c6d7e8f9a0b1c2d3"
    public static let reloadFailedMessageID = "d3c2b1a0f9e84d7c6b5a4f3e2d1c0b9a"
    /// MESSAGE_ID of "learned outcome changed a decision" journal entries.
    public static let learnedShiftMessageID = "5d2e8f1a3b6c4d7e9f0a1b2c3d4e5f60"
    /// MESSAGE_ID of "fleet version changed a decision" journal entries.
    public static let fleetShiftMessageID = "7c1d2e3f4a5b4c6d8e9f0a1b2c3d4e5f"
    /// MESSAGE_ID of "optimistic evidence held back" journal entries.
    public static let optimismHeldBackMessageID = "5b0f3c0e9d6a4e1f8a7c2b9d4e6f1a3c"
    /// MESSAGE_ID of "reports refused" journal entries (a peer found implausible).
    public static let reportsRefusedMessageID = "e1f2a3b4c5d64e7f8091a2b3c4d5e6f7"

    public struct Counters: Sendable {
        public var plans = 0
        public var infeasible = 0
        public var errors = 0
        /// The errors by the name of the error answered (`InvalidParameter`, `UnknownTask`, `ReloadFailed`, ...).
        public var errorsByKind: [String: Int] = [:]
        public var reports = 0
        /// Reports refused because the peer may not teach the daemon.
        public var refusedReports = 0
        /// Reports dropped because their peer sent more than the policy's rate.
        public var rateLimitedReports = 0
        /// Connections closed for a message over the frame limit.
        public var oversizeFrames = 0
        /// Connections turned away at the connection cap, and closed for idling.
        public var rejectedConnections = 0
        public var idleClosed = 0
        public var reloads = 0
        /// Plans that exploration picked, and the expected accuracy they gave up in all (a fraction summed).
        public var exploredPlans = 0
        public var explorationLoss = 0.0
        /// Decisions not journaled because of the policy's `journal.decisions_every`.
        public var decisionsSampledOut = 0
    }

    private let snapshot: Mutex<Planner>
    private let authorizer: Mutex<ReportAuthorizer>
    private let reportRate: Mutex<ReportRateLimiter>
    private let learner: Mutex<Learner>
    /// Recent plans by request id, for reports that name only the id.
    public let memory: PlanMemory
    /// The runs admitted on the engine (with the policy's ledger on): what each request is planned against.
    public let ledger = RunLedger()
    private let nextRequestID = Mutex(0)
    private let counters = Mutex(Counters())
    private let reloadError = Mutex<String?>(nil)
    private let loader: @Sendable () throws -> Planner
    private let logger: Logger
    public let journal: JournalSink?
    /// Metrics, when the daemon exports them.
    public let metrics: DaemonMetrics?
    /// What happens, for `Watch` subscribers.
    public let events = EventStream()
    public let startedAt = Date()

    /// Loads the first snapshot with `loader` (which a reload calls again) and warms its fronts.
    public init(
        logger: Logger,
        journal: JournalSink? = nil,
        metrics: DaemonMetrics? = nil,
        loader: @escaping @Sendable () throws -> Planner
    ) throws {
        self.metrics = metrics
        let planner = try loader()
        Self.warm(planner)
        self.snapshot = Mutex(planner)
        self.authorizer = Mutex(try ReportAuthorizer.resolve(planner.policy.reporting))
        self.reportRate = Mutex(ReportRateLimiter(rate: planner.policy.reporting.maxReportsPerSecond))
        self.learner = Mutex(Learner(policy: planner.policy.learning))
        self.memory = PlanMemory(capacity: planner.policy.learning.rememberedPlans)
        self.loader = loader
        self.logger = logger
        self.journal = journal
        journal?.setLevel(Self.level(planner.policy.journal.level))
    }

    /// The policy's journal level as swift-log names it (the names are the same).
    static func level(_ level: JournalPolicy.Level) -> Logger.Level { Logger.Level(rawValue: level.rawValue)! }

    public var planner: Planner { snapshot.withLock { $0 } }
    public var lastReloadError: String? { reloadError.withLock { $0 } }
    public var currentCounters: Counters { counters.withLock { $0 } }

    /// Builds every task's front at its typical input length so the first requests are warm.
    static func warm(_ planner: Planner, only classes: Set<String>? = nil) {
        for task in planner.taskClasses where classes?.contains(task) ?? true {
            guard let table = try? planner.table(taskClass: task) else { continue }
            _ = try? planner.front(
                task: task,
                inputTokens: planner.policy.task(task).defaultInputTokens ?? table.typicalInputTokens
            )
        }
    }

    /// Re-reads policy and profile; on any error keeps the current snapshot and returns the error.
    @discardableResult
    public func reload() -> EdgePlanError? {
        do {
            var fresh = try loader()
            fresh = fresh.applying(
                learner.withLock { learner in
                    learner.rebuildAll(planner: fresh)
                    return learner.overlay
                }
            )
            let reporters = try ReportAuthorizer.resolve(fresh.policy.reporting)
            Self.warm(fresh)
            snapshot.withLock { $0 = fresh }
            authorizer.withLock { $0 = reporters }
            reportRate.withLock { $0 = ReportRateLimiter(rate: fresh.policy.reporting.maxReportsPerSecond) }
            journal?.setLevel(Self.level(fresh.policy.journal.level))
            reloadError.withLock { $0 = nil }
            counters.withLock { $0.reloads += 1 }
            logger.notice(
                "reloaded policy and profile",
                metadata: [
                    "MESSAGE_ID": "\(Self.reloadedMessageID)", "profile_version": "\(fresh.profile.version)",
                    "policy_version": "\(fresh.policy.version)",
                ]
            )
            events.publish(.reload) {
                .fields([
                    "ok": .bool(true), "profileVersion": .string(fresh.profile.version),
                    "policyVersion": .string(fresh.policy.version),
                ])
            }
            return nil
        } catch {
            let failure = (error as? EdgePlanError) ?? EdgePlanError(.io, "\(error)")
            reloadError.withLock { $0 = failure.description }
            logger.error(
                "reload failed, keeping the last good policy and profile: \(failure)",
                metadata: ["MESSAGE_ID": "\(Self.reloadFailedMessageID)"]
            )
            events.publish(.reload) {
                .fields([
                    "ok": .bool(false), "message": .string(failure.description),
                    "policyVersion": .string(self.planner.policy.version),
                ])
            }
            return failure
        }
    }

    /// Swaps in a recalibrated profile under the current policy. The new planner is built and its fronts
    /// warmed before the swap, so requests never wait; its caches start empty, so no stale front survives.
    /// If an operator reload swaps the policy meanwhile, the planner is rebuilt on the new one.
    public func install(profile: ProfileSet) throws {
        while true {
            let current = planner
            let policy = current.policy
            let bare = try current.recalibrated(to: profile)
            let fresh = bare.applying(
                learner.withLock { learner in
                    learner.rebuildAll(planner: bare)
                    return learner.overlay
                }
            )
            Self.warm(fresh)
            let swapped = snapshot.withLock { current -> Bool in
                guard current.policy.version == policy.version else { return false }
                current = fresh
                return true
            }
            if swapped { return }
        }
    }

    /// Solves a request on the current snapshot, remembers it by request id (one is assigned when the request
    /// has none) and logs the decision.
    public func plan(_ request: PlanRequest) throws -> PlanOutcome {
        let planner = self.planner
        var request = request
        if request.requestID == nil {
            let id = nextRequestID.withLock { id -> Int in
                id += 1
                return id
            }
            request.requestID = "ep-\(id)"
        }
        var outcome: PlanOutcome
        let started = metrics == nil ? 0 : DispatchTime.now().uptimeNanoseconds
        // An error is counted where it is answered (countError), once.
        var random: SystemRandomNumberGenerator? = SystemRandomNumberGenerator()
        let now = Self.monotonicSeconds()
        let load = planner.policy.ledger ? ledger.load(at: now, excluding: request.requestID) : EngineLoad()
        if load.isEmpty {
            outcome = try planner.plan(request, random: &random)
        } else {
            outcome = try planner.plan(request, load: load, priority: planner.policy.task(request.task).priority)
        }
        // A request planned again under its id (a client that counted its prompt again) still names the runs its
        // earlier plan made yield: they are gone from the ledger, but they yielded to it.
        if planner.policy.ledger, let id = request.requestID, case var .plan(again) = outcome {
            let earlier = ledger.preempts(of: id)
            if !earlier.isEmpty {
                var assumed =
                    again.load
                    ?? PlanLoad(
                        runsBeside: 0,
                        sequencesBeside: 0,
                        peakSequences: again.configuration.parallel,
                        meanSequences: Double(again.configuration.parallel),
                        waitS: 0,
                        idleLatencyPercentileS: again.latencyPercentileS,
                        preempts: [],
                        delayed: [:]
                    )
                assumed.preempts = earlier + assumed.preempts.filter { !earlier.contains($0) }
                again.load = assumed
                outcome = .plan(again)
            }
        }
        if let metrics {
            metrics.planDuration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
            if case .plan = outcome { metrics.plans.increment() } else { metrics.infeasible.increment() }
        }
        switch outcome {
        case let .plan(plan):
            let every = planner.policy.journal.decisionsEvery
            let journaled = counters.withLock { counters -> Bool in
                counters.plans += 1
                if plan.explored {
                    counters.exploredPlans += 1
                    counters.explorationLoss += plan.explorationLoss
                }
                guard every == 1 || counters.plans % every == 0 else {
                    counters.decisionsSampledOut += 1
                    return false
                }
                return true
            }
            if let id = plan.requestID {
                memory.remember(
                    id,
                    .init(
                        taskClass: plan.task,
                        configuration: plan.configuration,
                        inputTokens: plan.inputTokens,
                        plannedAtS: UInt32(clamping: Int(Date().timeIntervalSince1970))
                    )
                )
            }
            if planner.policy.ledger, let variant = planner.profile.variants[plan.configuration.variant] {
                let preempted = ledger.admit(
                    plan,
                    variant: variant,
                    priority: planner.policy.task(plan.task).priority,
                    at: now
                )
                if !preempted.isEmpty {
                    logger.notice(
                        "plan preempts admitted runs of lower priority",
                        metadata: [
                            "request_id": "\(plan.requestID ?? "")", "task": "\(plan.task)",
                            "preempted": "\(preempted.joined(separator: ","))",
                        ]
                    )
                    events.publish(.preempt) {
                        .fields([
                            "requestIds": .array(preempted.map(JSONValue.string)),
                            "by": .string(plan.requestID ?? ""), "task": .string(plan.task),
                        ])
                    }
                }
            }
            if journaled { journalDecision(plan) } else { metrics?.decisionsSampledOut.increment() }
            events.publish(.decision) { plan.json }
        case let .infeasible(reason):
            counters.withLock { $0.infeasible += 1 }
            if planner.policy.ledger, let id = request.requestID { ledger.withdraw(id, at: now) }
            logger.warning(
                "no feasible plan: \(reason.message)",
                metadata: [
                    "MESSAGE_ID": "\(Self.noFeasiblePlanMessageID)", "task": "\(reason.task)",
                    "limit": "\(reason.limit.rawValue)",
                    "deadline_ms": "\(request.deadlineS.map { Self.decimal($0 * 1000) } ?? "default")",
                    "energy_budget_j": "\(request.energyBudgetJ.map { Self.decimal($0) } ?? "none")",
                    "request_id": "\(request.requestID ?? "")",
                ]
            )
            events.publish(.infeasible) {
                .object(
                    [
                        ("requestId", .string(request.requestID ?? "")), ("task", .string(reason.task)),
                        ("limit", .string(reason.limit.rawValue)), ("message", .string(reason.message)),
                    ] + reason.measuredFields
                )
            }
        }
        return outcome
    }

    /// Validates a reported outcome against the snapshot: the predicted latency at its lengths, for comparison, and
    /// why the run is impossible there, if it is (then nothing may learn from it).
    public func report(_ report: OutcomeReport) throws -> (predictedS: Double, implausible: String?) {
        let planner = self.planner
        let variant = try planner.profile.variant(model: report.model, quantization: report.quantization)
        // A run that shared the engine with runs this daemon planned is judged at the sequences that decoded with it.
        let prediction = planner.predictor.predict(
            variant,
            input: report.inputTokens,
            output: Double(report.outputTokens),
            parallel: max(report.runningSequences ?? report.parallel, report.parallel)
        )
        counters.withLock { $0.reports += 1 }
        metrics?.reportsAccepted.increment()
        let problem = plausibility.problem(
            variant,
            device: planner.profile.device,
            outputTokens: report.outputTokens,
            latencyS: report.latencyS,
            predictedS: prediction.latencyS
        )
        return (prediction.latencyS, problem)
    }

    /// The bounds on a possible run; the calibration loop applies the same ones.
    public let plausibility = Plausibility()

    /// Counts an outcome whose learning part was refused before the learner saw it.
    public func countRefusedOutcome(_ refusal: Learner.Refusal) {
        learner.withLock { $0.countRefused(refusal) }
    }

    /// Counts a request answered with an error; `name` is the error's, with or without its interface.
    public func countError(_ name: String) {
        let kind = name.split(separator: ".").last.map(String.init) ?? name
        counters.withLock {
            $0.errors += 1
            $0.errorsByKind[kind, default: 0] += 1
        }
        metrics?.countError(kind: kind)
    }

    /// Whether `peer` may send one more report now (the policy's per-peer rate); counts those it may not.
    public func admitReport(from peer: UInt32) -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        guard reportRate.withLock({ $0.admit(peer, at: Double(now) / 1e9) }) else {
            counters.withLock { $0.rateLimitedReports += 1 }
            metrics?.reportsRateLimited.increment()
            return false
        }
        return true
    }

    public func countRefusedReport() {
        counters.withLock { $0.refusedReports += 1 }
        metrics?.reportsRefused.increment()
    }

    /// Counts an accepted report whose latency could not be judged (it carried no output tokens).
    public func countReport() {
        counters.withLock { $0.reports += 1 }
        metrics?.reportsAccepted.increment()
    }

    public func countRejectedConnection() { counters.withLock { $0.rejectedConnections += 1 } }

    public func countIdleClose() { counters.withLock { $0.idleClosed += 1 } }

    /// Connections open now (the server's cap counts them).
    public let connections = ConnectionCount()

    /// Counts and journals a connection closed for an oversized message.
    public func countOversizeFrame(peer: UInt32) {
        let count = counters.withLock { counters -> Int in
            counters.oversizeFrames += 1
            return counters.oversizeFrames
        }
        logger.warning(
            "connection closed: message over the frame limit",
            metadata: ["peer_uid": "\(peer)", "oversize_frames": "\(count)"]
        )
    }

    /// Who may report outcomes under the current policy.
    public var reporters: ReportAuthorizer { authorizer.withLock { $0 } }

    /// Learns from one outcome and swaps in a planner that uses it at once. A change of decision for the task
    /// class's default request is journaled with before and after.
    @discardableResult
    public func learn(_ outcome: LearningOutcome) -> [Learner.Refusal] {
        let planner = self.planner
        let wasIgnored = learner.withLock { $0.peers[outcome.peer]?.ignored ?? false }
        let before = Self.probe(planner, outcome.taskClass)
        let (refusals, overlay, heldBefore, heldAfter) = learner.withLock { learner in
            let before = learner.heldBack
            return (learner.learn(outcome, planner: planner), learner.overlay, before, learner.heldBack)
        }
        // Optimism from too few peers moves beliefs only at a bounded rate: say what is held back, once.
        for entry in heldAfter.subtracting(heldBefore).sorted() {
            logger.notice(
                "optimistic evidence held back until corroborated",
                metadata: [
                    "MESSAGE_ID": "\(Self.optimismHeldBackMessageID)", "estimate": "\(entry)",
                    "peer_uid": "\(outcome.peer)",
                    "points_per_hour": "\(Self.decimal(learner.withLock { $0.policy.optimismPointsPerHour } * 100))",
                ]
            )
        }
        // Only this class's estimates moved, unless a peer was newly ignored (then every class is rebuilt).
        let fresh = swapOverlay(
            overlay,
            basedOn: planner,
            changed: refusals.contains(.implausiblePeer) ? nil : [outcome.taskClass]
        )
        let after = Self.probe(fresh, outcome.taskClass)
        if let before, let after, Self.decisionChanged(before, after) {
            logger.notice(
                "learned outcome changed a decision",
                metadata: [
                    "MESSAGE_ID": "\(Self.learnedShiftMessageID)", "task": "\(outcome.taskClass)",
                    "before": "\(before.configuration)", "before_accuracy": "\(Self.decimal(before.accuracy))",
                    "before_source": "\(before.accuracySource.rawValue)",
                    "after": "\(after.configuration)", "after_accuracy": "\(Self.decimal(after.accuracy))",
                    "after_source": "\(after.accuracySource.rawValue)",
                    "observations": "\(after.estimate.observations)",
                ]
            )
        }
        if !wasIgnored, refusals.contains(.implausiblePeer) {
            logger.warning(
                "reports refused: peer's outcomes are implausible",
                metadata: [
                    "MESSAGE_ID": "\(Self.reportsRefusedMessageID)", "peer_uid": "\(outcome.peer)",
                    "task": "\(outcome.taskClass)",
                ]
            )
        }
        return refusals
    }

    /// Replays stored outcomes (after a restart), then swaps once.
    public func replay(_ outcomes: [LearningOutcome]) {
        let planner = self.planner
        let overlay = learner.withLock { learner in
            // Rebuilt once at the end: the fleet's pseudo-outcomes come in hundreds per group.
            for outcome in outcomes { learner.learn(outcome, planner: planner, deferRebuild: true) }
            learner.rebuildAll(planner: planner)
            return learner.overlay
        }
        swapOverlay(overlay, basedOn: planner)
    }

    /// Learns everything again from `outcomes` (a new fleet version first, then the robot's own), and journals each
    /// task class whose decision changed.
    public func relearn(_ outcomes: [LearningOutcome], fleetVersion: Int) {
        let planner = self.planner
        let before = planner.taskClasses.map { ($0, Self.probe(planner, $0)) }
        let overlay = learner.withLock { learner in
            learner = Learner(policy: planner.policy.learning)
            // Rebuilt once at the end: the fleet's pseudo-outcomes come in hundreds per group.
            for outcome in outcomes { learner.learn(outcome, planner: planner, deferRebuild: true) }
            learner.rebuildAll(planner: planner)
            return learner.overlay
        }
        let fresh = swapOverlay(overlay, basedOn: planner)
        for (task, old) in before {
            // Only another configuration is a changed decision here: a version moves accuracy figures all the time.
            guard let old, let new = Self.probe(fresh, task), old.configuration != new.configuration else { continue }
            logger.notice(
                "fleet version changed a decision",
                metadata: [
                    "MESSAGE_ID": "\(Self.fleetShiftMessageID)", "task": "\(task)",
                    "before": "\(old.configuration)", "before_accuracy": "\(Self.decimal(old.accuracy))",
                    "after": "\(new.configuration)", "after_accuracy": "\(Self.decimal(new.accuracy))",
                    "fleet_version": "\(fleetVersion)",
                ]
            )
        }
    }

    /// The learner's state, for `Status`.
    public var learning: Learner { learner.withLock { $0 } }

    @discardableResult
    private func swapOverlay(
        _ overlay: LearnedOverlay,
        basedOn planner: Planner,
        changed: Set<String>? = nil
    ) -> Planner {
        let fresh = planner.applying(overlay, changed: changed)
        Self.warm(fresh, only: changed)
        return snapshot.withLock { current in
            // A reload or recalibration may have swapped meanwhile: keep its profile and policy, with the overlay.
            if current.profile.version == planner.profile.version && current.policy.version == planner.policy.version {
                current = fresh
            } else {
                current = current.applying(
                    learner.withLock { learner in
                        learner.rebuildAll(planner: current)
                        return learner.overlay
                    }
                )
            }
            return current
        }
    }

    /// Whether a decision changed enough to journal: another configuration, or accuracy moved by more than 2 points.
    static func decisionChanged(_ before: Plan, _ after: Plan) -> Bool {
        before.configuration != after.configuration || abs(before.accuracy - after.accuracy) > 0.02
    }

    /// The decision for a task class's default request, if its policy gives one.
    static func probe(_ planner: Planner, _ taskClass: String) -> Plan? {
        guard
            case let .plan(plan)? = try? planner.plan(
                PlanRequest(task: taskClass, deadlineS: planner.policy.task(taskClass).defaultDeadlineS ?? 60)
            )
        else { return nil }
        return plan
    }

    static func decimal(_ value: Double) -> String { value.significantDigits(4) }

    /// Journals a decision. With the daemon's journal sink the fields are formatted on its writer thread (the
    /// event loop only hands over the plan); otherwise through the logger.
    private func journalDecision(_ plan: Plan, file: String = #fileID, line: UInt = #line, function: String = #function)
    {
        guard logger.logLevel <= .info, journal?.admits(.info) ?? true else { return }
        guard let journal else {
            logger.info("plan decided", metadata: Self.decisionMetadata(plan))
            return
        }
        journal.submit(
            JournalSink.Entry(
                message: "plan decided",
                priority: JournalLogHandler.priority(.info),
                logger: logger.label,
                metadata: logger.handler.metadata,
                file: file,
                line: line,
                function: function,
                decision: DecisionRecord(plan)
            )
        )
    }

    static func decisionMetadata(_ plan: Plan) -> Logger.Metadata { DecisionRecord(plan).metadata }
}

/// The open connections: how many in all and per user, and, for each, when it last sent a call, so that a full
/// table can make room for a new client by closing the connection that has waited longest for nothing.
public final class ConnectionCount: Sendable {
    public typealias ID = UInt64

    private struct Entry {
        var user: UInt32
        var openedNS: UInt64
        var lastCallNS: UInt64?
        var watching = false
        var close: @Sendable () -> Void
    }

    private struct Table {
        var total = 0
        var byUser: [UInt32: Int] = [:]
        var entries: [ID: Entry] = [:]
        var next: ID = 0
    }

    /// What ``enter(user:limit:perUser:close:)`` decided.
    public enum Admission: Equatable, Sendable {
        /// Admitted; `evicted` says whether an idle connection was closed to make room.
        case admitted(ID, evicted: Bool)
        /// Refused: the limit reached, with no connection idle long enough to give way.
        case refused(limit: Int)
    }

    private let table = Mutex(Table())
    /// How long a connection must have been idle before a new client may take its place, so that a burst of new
    /// connections cannot churn through each other.
    public let minimumIdleToEvictNS: UInt64

    public init(minimumIdleToEvictS: Double = 1) {
        minimumIdleToEvictNS = UInt64(minimumIdleToEvictS * 1e9)
    }

    /// Takes a place if fewer than `limit` connections are open in all and fewer than `perUser` of `user`'s. At a
    /// limit, the connection idle longest in that scope (all, or the user's own) gives way and `close` is called
    /// for it: first one that never sent a call, then the one whose last call is oldest; never a watcher, never one
    /// idle for less than the minimum. `close` closes the new connection, should it have to give way later.
    public func enter(user: UInt32, limit: Int, perUser: Int, close: @escaping @Sendable () -> Void) -> Admission {
        let now = DispatchTime.now().uptimeNanoseconds
        let (admission, evicted) = table.withLock { table -> (Admission, (@Sendable () -> Void)?) in
            var victim: ID?
            if table.total >= limit || table.byUser[user, default: 0] >= perUser {
                let scope = table.total >= limit ? nil : user
                guard let id = Self.idlest(table, now: now, minimumIdleNS: minimumIdleToEvictNS, user: scope) else {
                    return (.refused(limit: scope == nil ? limit : perUser), nil)
                }
                victim = id
            }
            var evicted: (@Sendable () -> Void)?
            if let victim, let entry = table.entries.removeValue(forKey: victim) {
                Self.release(entry.user, in: &table)
                evicted = entry.close
            }
            table.next += 1
            table.entries[table.next] = Entry(user: user, openedNS: now, close: close)
            table.total += 1
            table.byUser[user, default: 0] += 1
            return (.admitted(table.next, evicted: victim != nil), evicted)
        }
        evicted?()
        return admission
    }

    /// The connection that gives way first in `user`'s scope (all when nil), if any may.
    private static func idlest(_ table: Table, now: UInt64, minimumIdleNS: UInt64, user: UInt32?) -> ID? {
        // Never-called connections first (rank 0), then by how long ago they last sent a call.
        var best: (id: ID, rank: Int, since: UInt64)?
        for (id, entry) in table.entries where !entry.watching && (user == nil || entry.user == user) {
            let since = entry.lastCallNS ?? entry.openedNS
            guard now >= since + minimumIdleNS else { continue }
            let rank = entry.lastCallNS == nil ? 0 : 1
            if let current = best, (current.rank, current.since) <= (rank, since) { continue }
            best = (id, rank, since)
        }
        return best?.id
    }

    private static func release(_ user: UInt32, in table: inout Table) {
        table.total -= 1
        table.byUser[user]! -= 1
        if table.byUser[user] == 0 { table.byUser[user] = nil }
    }

    /// The connection sent a call: it is not idle.
    public func called(_ id: ID) {
        let now = DispatchTime.now().uptimeNanoseconds
        table.withLock { $0.entries[id]?.lastCallNS = now }
    }

    /// The connection listens for events: it never gives way.
    public func watching(_ id: ID) {
        table.withLock { $0.entries[id]?.watching = true }
    }

    /// The connection closed (a no-op for one that gave way, already released).
    public func leave(_ id: ID) {
        table.withLock { table in
            guard let entry = table.entries.removeValue(forKey: id) else { return }
            Self.release(entry.user, in: &table)
        }
    }

    public var current: Int { table.withLock { $0.total } }
}

/// What a scheduler reports after running a plan.
public struct OutcomeReport: Sendable, Equatable {
    public var requestID: String
    public var model: String
    public var quantization: Quantization
    public var mode: LengthMode
    public var tokenBudget: Int?
    public var parallel: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var latencyS: Double
    public var energyJ: Double?
    public var startedAt: Double?
    public var correct: Bool?
    public var sampleOutputTokens: [Int] = []
    /// The reporting peer's user id (from the socket's credentials).
    public var peer: UInt32 = 0
    /// Sequences that decoded on the engine beside and with it (from the ledger), rounded up; nil: its own k.
    public var runningSequences: Int? = nil
    /// Its share of the engine's work while it ran (from the ledger): energy from shared rails is split by it.
    public var energyShare: Double? = nil
}

extension PlannerService {
    /// Seconds on a monotonic clock: the ledger's time.
    public static func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
