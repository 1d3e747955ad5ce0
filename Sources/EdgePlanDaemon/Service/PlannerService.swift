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

    public struct Counters: Sendable {
        public var plans = 0
        public var infeasible = 0
        public var errors = 0
        public var reports = 0
        public var reloads = 0
    }

    private let snapshot: Mutex<Planner>
    private let counters = Mutex(Counters())
    private let reloadError = Mutex<String?>(nil)
    private let loader: @Sendable () throws -> Planner
    private let logger: Logger
    public let journal: JournalSink?
    public let startedAt = Date()

    /// Loads the first snapshot with `loader` (which a reload calls again) and warms its fronts.
    public init(logger: Logger, journal: JournalSink? = nil, loader: @escaping @Sendable () throws -> Planner) throws {
        let planner = try loader()
        Self.warm(planner)
        self.snapshot = Mutex(planner)
        self.loader = loader
        self.logger = logger
        self.journal = journal
    }

    public var planner: Planner { snapshot.withLock { $0 } }
    public var lastReloadError: String? { reloadError.withLock { $0 } }
    public var currentCounters: Counters { counters.withLock { $0 } }

    /// Builds every task's front at its typical input length so the first requests are warm.
    static func warm(_ planner: Planner) {
        for task in planner.profile.tasks {
            if let table = planner.profile.accuracy[task] { _ = try? planner.front(task: task, inputTokens: table.typicalInputTokens) }
        }
    }

    /// Re-reads policy and profile; on any error keeps the current snapshot and returns the error.
    @discardableResult
    public func reload() -> EdgePlanError? {
        do {
            let fresh = try loader()
            Self.warm(fresh)
            snapshot.withLock { $0 = fresh }
            reloadError.withLock { $0 = nil }
            counters.withLock { $0.reloads += 1 }
            logger.notice("reloaded policy and profile", metadata: ["profile_version": "\(fresh.profile.version)", "policy_version": "\(fresh.policy.version)"])
            return nil
        } catch {
            let failure = (error as? EdgePlanError) ?? EdgePlanError(.io, "\(error)")
            reloadError.withLock { $0 = failure.description }
            logger.error("reload failed, keeping the last good policy and profile: \(failure)")
            return failure
        }
    }

    /// Swaps in a recalibrated profile under the current policy. The new planner is built and its fronts
    /// warmed before the swap, so requests never wait; its caches start empty, so no stale front survives.
    /// If an operator reload swaps the policy meanwhile, the planner is rebuilt on the new one.
    public func install(profile: ProfileSet) throws {
        while true {
            let policy = planner.policy
            let fresh = try Planner(profile: profile, policy: policy)
            Self.warm(fresh)
            let swapped = snapshot.withLock { current -> Bool in
                guard current.policy.version == policy.version else { return false }
                current = fresh
                return true
            }
            if swapped { return }
        }
    }

    /// Solves a request on the current snapshot and logs the decision.
    public func plan(_ request: PlanRequest) throws -> PlanOutcome {
        let planner = self.planner
        let outcome: PlanOutcome
        do {
            outcome = try planner.plan(request)
        } catch {
            counters.withLock { $0.errors += 1 }
            throw error
        }
        switch outcome {
        case let .plan(plan):
            counters.withLock { $0.plans += 1 }
            logger.info("plan decided", metadata: [
                "MESSAGE_ID": "\(Self.planDecidedMessageID)",
                "task": "\(plan.task)", "model": "\(plan.configuration.variant.model)",
                "quant": "\(plan.configuration.variant.quantization.rawValue)", "mode": "\(plan.configuration.mode.rawValue)",
                "token_budget": "\(plan.configuration.budgetTokens.map(String.init) ?? "none")",
                "parallel": "\(plan.configuration.parallel)", "deadline_ms": "\(Self.decimal(plan.deadlineS * 1000))",
                "energy_budget_j": "\(plan.energyBudgetJ.map { Self.decimal($0) } ?? "none")",
                "pred_latency_ms": "\(Self.decimal(plan.latencyS * 1000))", "pred_energy_j": "\(Self.decimal(plan.energyJ))",
                "pred_accuracy": "\(Self.decimal(plan.accuracy))", "miss_prob": "\(Self.decimal(plan.missProbability))",
                "request_id": "\(plan.requestID ?? "")",
            ])
        case let .infeasible(reason):
            counters.withLock { $0.infeasible += 1 }
            logger.warning("no feasible plan: \(reason.message)", metadata: [
                "MESSAGE_ID": "\(Self.noFeasiblePlanMessageID)", "task": "\(reason.task)", "limit": "\(reason.limit.rawValue)",
                "deadline_ms": "\(request.deadlineS.map { Self.decimal($0 * 1000) } ?? "default")",
                "energy_budget_j": "\(request.energyBudgetJ.map { Self.decimal($0) } ?? "none")",
                "request_id": "\(request.requestID ?? "")",
            ])
        }
        return outcome
    }

    /// Validates a reported outcome against the snapshot and returns the predicted latency for comparison.
    public func report(_ report: OutcomeReport) throws -> Double {
        let planner = self.planner
        let variant = try planner.profile.variant(model: report.model, quantization: report.quantization)
        let prediction = planner.predictor.predict(variant, input: report.inputTokens, output: Double(report.outputTokens), parallel: report.parallel)
        counters.withLock { $0.reports += 1 }
        return prediction.latencyS
    }

    public func countError() { counters.withLock { $0.errors += 1 } }

    static func decimal(_ value: Double) -> String { value.significantDigits(4) }
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
}
