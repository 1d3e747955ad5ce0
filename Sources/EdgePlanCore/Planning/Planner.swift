import Foundation
import Synchronization

/// Chooses a configuration per request on one profile and policy snapshot.
///
/// Pareto fronts are cached per task and 128-token input bucket (prefill pads to 128 anyway); a new profile or
/// policy means a new planner, so a reload or recalibration invalidates every cached front at once.
public final class Planner: Sendable {
    public let profile: ProfileSet
    public let policy: Policy
    public let predictor: Predictor
    private let spaces: [String: ConfigurationSpace]
    private let cache = Mutex<[FrontKey: ParetoFront]>([:])

    private struct FrontKey: Hashable {
        var task: String
        var bucket: Int
    }

    /// Input lengths are grouped in buckets of this many tokens; fronts are built at the bucket's upper edge.
    public static let bucketTokens = 128

    public init(profile: ProfileSet, policy: Policy) throws {
        try policy.check(against: profile)
        self.profile = profile
        self.policy = policy
        self.predictor = Predictor(device: profile.device)
        var spaces: [String: ConfigurationSpace] = [:]
        for (task, table) in profile.accuracy {
            let taskPolicy = policy.task(task)
            let factors = policy.parallelFactors.filter { $0 <= taskPolicy.maxParallel }
            spaces[task] = ConfigurationSpace(task: table, profile: profile, parallelFactors: factors)
        }
        self.spaces = spaces
    }

    /// Number of fronts currently cached.
    public var cachedFronts: Int { cache.withLock { $0.count } }

    /// The Pareto front of a task at an input length, from the cache when present.
    public func front(task: String, inputTokens: Int) throws -> ParetoFront {
        guard inputTokens > 0, inputTokens <= PlanRequest.maxInputTokens else {
            throw EdgePlanError.invalidInput("input tokens must be within 1...\(PlanRequest.maxInputTokens) (got \(inputTokens))", field: "inputTokens")
        }
        let bucket = Self.bucket(inputTokens)
        let key = FrontKey(task: task, bucket: bucket)
        if let cached = cache.withLock({ $0[key] }) { return cached }
        let front = try buildFront(task: task, inputTokens: bucket)
        cache.withLock { $0[key] = front }
        return front
    }

    /// Builds a front without the cache (what a cold request pays).
    public func buildFront(task: String, inputTokens: Int) throws -> ParetoFront {
        guard let space = spaces[task] else { _ = try profile.table(task: task); throw EdgePlanError(.unknownTask, "no configurations for task '\(task)'") }
        let taskPolicy = policy.task(task)
        var evaluated: [EvaluatedConfiguration] = []
        evaluated.reserveCapacity(space.candidates.count)
        for candidate in space.candidates where taskPolicy.allows(candidate.configuration) {
            let point = evaluate(candidate, inputTokens: inputTokens)
            if point.mean.fits && memoryFitsAtPercentile(point) { evaluated.append(point) }
        }
        return ParetoFront(task: task, inputTokens: inputTokens, evaluated: evaluated)
    }

    public static func bucket(_ inputTokens: Int) -> Int {
        max(1, (inputTokens + bucketTokens - 1) / bucketTokens) * bucketTokens
    }

    func evaluate(_ candidate: ConfigurationSpace.Candidate, inputTokens: Int) -> EvaluatedConfiguration {
        let k = candidate.configuration.parallel
        let mean = predictor.predict(candidate.variant, input: inputTokens, output: candidate.outputLength.meanTokens, parallel: k)
        let tail = candidate.outputLength.quantileOfMaximum(policy.latencyPercentile, samples: k)
        let tailLatency = mean.prefillS + predictor.decodeSeconds(candidate.variant, input: inputTokens, output: tail, parallel: k)
        return EvaluatedConfiguration(
            configuration: candidate.configuration, accuracy: candidate.accuracy, accuracySource: candidate.accuracySource,
            outputLength: candidate.outputLength, mean: mean, latencyPercentileS: tailLatency, percentileOutputTokens: tail,
            inputTokens: inputTokens)
    }

    private func memoryFitsAtPercentile(_ point: EvaluatedConfiguration) -> Bool {
        guard let variant = profile.variants[point.configuration.variant] else { return false }
        let memory = predictor.memoryGiB(variant, input: point.inputTokens, output: point.percentileOutputTokens, parallel: point.configuration.parallel)
        return memory <= profile.device.usableMemoryGiB
    }

    /// Solves one request: the best feasible point on the front, re-evaluated at the exact input length.
    public func plan(_ request: PlanRequest) throws -> PlanOutcome {
        try request.validate()
        let table = try profile.table(task: request.task)
        let taskPolicy = policy.task(request.task)
        guard let deadlineS = request.deadlineS ?? taskPolicy.defaultDeadlineS else {
            throw EdgePlanError.invalidInput("no deadline given and the policy has no default deadline for task '\(request.task)'", field: "deadline")
        }
        let energyBudgetJ = request.energyBudgetJ ?? taskPolicy.defaultEnergyBudgetJ
        let minAccuracy = request.minAccuracy ?? taskPolicy.minAccuracy
        let objective = request.objective ?? taskPolicy.objective
        let inputTokens = request.inputTokens ?? table.typicalInputTokens
        let front = try self.front(task: request.task, inputTokens: inputTokens)
        let latencyLimitS = deadlineS * (1 - policy.safetyMargin)

        // Front points are sorted by accuracy, then energy, then latency: the first feasible one has the
        // highest accuracy; for min-energy the cheapest feasible one wins, ties going to higher accuracy.
        let feasible = front.points.lazy.filter { point in
            point.latencyPercentileS <= latencyLimitS
                && energyBudgetJ.map { point.energyJ <= $0 } ?? true
                && minAccuracy.map { point.accuracy >= $0 } ?? true
        }
        let best: EvaluatedConfiguration?
        switch objective {
        case .maxAccuracy: best = feasible.first
        case .minEnergy: best = feasible.reduce(nil) { current, point in current.map { $0.energyJ <= point.energyJ ? $0 : point } ?? point }
        }
        guard let chosen = best else {
            return .infeasible(explain(front: front, task: request.task, latencyLimitS: latencyLimitS, energyBudgetJ: energyBudgetJ, minAccuracy: minAccuracy))
        }
        return .plan(makePlan(chosen, request: request, inputTokens: inputTokens, deadlineS: deadlineS, energyBudgetJ: energyBudgetJ))
    }

    private func makePlan(_ chosen: EvaluatedConfiguration, request: PlanRequest, inputTokens: Int, deadlineS: Double, energyBudgetJ: Double?) -> Plan {
        let configuration = chosen.configuration
        let variant = profile.variants[configuration.variant]!
        let k = configuration.parallel
        let exact = predictor.predict(variant, input: inputTokens, output: chosen.outputLength.meanTokens, parallel: k)
        let tailTokens = chosen.outputLength.quantileOfMaximum(policy.latencyPercentile, samples: k)
        let tailS = exact.prefillS + predictor.decodeSeconds(variant, input: inputTokens, output: tailTokens, parallel: k)
        let reachable = predictor.maxOutputTokens(variant, input: inputTokens, deadlineS: deadlineS, parallel: k)
        let miss: Double
        if let reachable {
            miss = chosen.outputLength.exceedanceProbability(Double(reachable), samples: k)
        } else {
            miss = 1
        }
        let guardTokens: Int
        if configuration.capped, let budget = configuration.budgetTokens {
            guardTokens = budget
        } else {
            guardTokens = max(1, min(reachable ?? 1, variant.contextTokens - inputTokens))
        }
        return Plan(
            task: request.task, requestID: request.requestID, configuration: configuration, inputTokens: inputTokens,
            deadlineS: deadlineS, energyBudgetJ: energyBudgetJ, latencyS: exact.latencyS, latencyPercentileS: tailS,
            percentile: policy.latencyPercentile, energyJ: exact.energyJ, accuracy: chosen.accuracy,
            accuracySource: chosen.accuracySource, costUSDPerMTok: exact.costUSDPerMTok, memoryGiB: exact.memoryGiB,
            missProbability: miss, meanOutputTokens: chosen.outputLength.meanTokens,
            engineRequest: EngineRequest(configuration: configuration, variant: variant, maxTokens: guardTokens),
            profileVersion: profile.version, policyVersion: policy.version)
    }

    private func explain(front: ParetoFront, task: String, latencyLimitS: Double, energyBudgetJ: Double?, minAccuracy: Double?) -> Infeasibility {
        let points = front.points
        guard !points.isEmpty else {
            return Infeasibility(task: task, limit: .policy, message: "the policy for task '\(task)' allows no configuration that fits in memory", closest: nil, missBy: nil, requested: nil)
        }
        let onTime = points.filter { $0.latencyPercentileS <= latencyLimitS }
        guard !onTime.isEmpty else {
            let fastest = points.min { $0.latencyPercentileS < $1.latencyPercentileS }!
            return Infeasibility(
                task: task, limit: .deadline,
                message: String(format: "no configuration finishes within %.3f s at p%g (deadline less safety margin); the fastest needs %.3f s", latencyLimitS, policy.latencyPercentile * 100, fastest.latencyPercentileS),
                closest: fastest, missBy: fastest.latencyPercentileS - latencyLimitS, requested: latencyLimitS)
        }
        if let energyBudgetJ {
            let withinEnergy = onTime.filter { $0.energyJ <= energyBudgetJ }
            if withinEnergy.isEmpty {
                let frugal = onTime.min { $0.energyJ < $1.energyJ }!
                return Infeasibility(
                    task: task, limit: .energyBudget,
                    message: String(format: "no on-time configuration stays within %.1f J; the most frugal needs %.1f J", energyBudgetJ, frugal.energyJ),
                    closest: frugal, missBy: frugal.energyJ - energyBudgetJ, requested: energyBudgetJ)
            }
            return accuracyShortfall(withinEnergy, task: task, minAccuracy: minAccuracy ?? 0)
        }
        return accuracyShortfall(onTime, task: task, minAccuracy: minAccuracy ?? 0)
    }

    private func accuracyShortfall(_ feasible: [EvaluatedConfiguration], task: String, minAccuracy: Double) -> Infeasibility {
        let best = feasible.max { $0.accuracy < $1.accuracy }!
        return Infeasibility(
            task: task, limit: .minAccuracy,
            message: String(format: "no configuration within the limits reaches accuracy %.3f; the best reaches %.3f", minAccuracy, best.accuracy),
            closest: best, missBy: minAccuracy - best.accuracy, requested: minAccuracy)
    }
}

extension Policy {
    /// Checks that the policy names only models and tasks the profile has, and leaves each task something to run.
    public func check(against profile: ProfileSet) throws {
        let known = Set(profile.modelNames)
        for (name, task) in [("defaults", defaultTask)] + tasks.sorted(by: { $0.key < $1.key }).map({ ($0.key, $0.value) }) {
            if name != "defaults" && profile.accuracy[name] == nil {
                throw EdgePlanError(.unknownTask, "policy section for unknown task '\(name)'; known tasks: \(profile.tasks.joined(separator: ", "))", field: "tasks.\(name)")
            }
            for model in (task.allowedModels ?? []).sorted() where !known.contains(model) {
                throw EdgePlanError(.unknownModel, "policy allows unknown model '\(model)'; known models: \(profile.modelNames.joined(separator: ", "))", field: "\(name == "defaults" ? "defaults" : "tasks.\(name)").allowed_models")
            }
            if name != "defaults", let table = profile.accuracy[name] {
                let runnable = table.records.contains { record in
                    task.allows(Configuration(variant: record.variant, mode: record.mode, budgetTokens: record.budgetTokens, capped: record.capped, parallel: 1))
                }
                if !runnable {
                    throw EdgePlanError(.invalidInput, "policy for task '\(name)' excludes every model, quantization and mode the profile has data for", field: "tasks.\(name)")
                }
            }
        }
    }
}
