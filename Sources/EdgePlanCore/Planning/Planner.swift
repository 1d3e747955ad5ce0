import Foundation
import Synchronization

/// Chooses a configuration per request on one profile, policy and learned-overlay snapshot.
///
/// Pareto fronts are cached per task class, 128-token input bucket (prefill pads to 128 anyway) and accuracy
/// ranking; a new profile, policy or overlay means a new planner, so a reload, recalibration or learned
/// update invalidates every cached front at once.
public final class Planner: Sendable {
    public let profile: ProfileSet
    public let policy: Policy
    public let predictor: Predictor
    public let lengths: OutputLengthFits
    public let overlay: LearnedOverlay
    private let spaces: SpaceCache
    /// Each task class's policy defaults, resolved once: a request looks up one entry.
    private let defaults: [String: ClassDefaults]
    private let cache = Mutex<[FrontKey: ParetoFront]>([:])
    /// Each variant's engine concurrency curve, built once: a plan against the ledger plays many timelines.
    let curves: [VariantID: DecodeConcurrency]

    private struct ClassDefaults: Sendable {
        var deadlineS: Double?
        var energyBudgetJ: Double?
        var minAccuracy: Double
        /// Chance on the task's answer options, when it has them (the floor is above it).
        var chance: Double?
        var objective: Objective
        var inputTokens: Int
    }

    private struct FrontKey: Hashable {
        var task: String
        var bucket: Int
        var ranking: AccuracyRanking
    }

    /// Input lengths are grouped in buckets of this many tokens; fronts are built at the bucket's upper edge.
    public static let bucketTokens = 128

    public init(profile: ProfileSet, policy: Policy) throws {
        try policy.check(against: profile)
        self.profile = profile
        self.policy = policy
        self.predictor = Predictor(device: profile.device)
        let lengths = OutputLengthFits(profile: profile)
        self.lengths = lengths
        self.overlay = LearnedOverlay()
        curves = profile.variants.mapValues(\.engineCurve)
        spaces = SpaceCache(profile: profile, policy: policy, lengths: lengths)
        defaults = spaces.names.reduce(into: [:]) { defaults, name in
            let task = policy.task(name)
            let table = profile.accuracy[policy.benchmark(of: name)]!
            let (floor, chance) = task.accuracyFloor(answerOptions: table.answerOptions)
            defaults[name] = ClassDefaults(
                deadlineS: task.defaultDeadlineS,
                energyBudgetJ: task.defaultEnergyBudgetJ,
                minAccuracy: floor,
                chance: chance,
                objective: task.objective,
                inputTokens: task.defaultInputTokens ?? table.typicalInputTokens
            )
        }
    }

    private init(
        sharing planner: Planner,
        overlay: LearnedOverlay,
        profile: ProfileSet? = nil,
        spaces: SpaceCache? = nil
    ) {
        self.profile = profile ?? planner.profile
        self.policy = planner.policy
        self.predictor = Predictor(device: (profile ?? planner.profile).device)
        self.lengths = planner.lengths
        self.spaces = spaces ?? planner.spaces
        self.defaults = planner.defaults
        self.overlay = overlay
        self.curves = profile.map { $0.variants.mapValues(\.engineCurve) } ?? planner.curves
    }

    /// The same policy on a recalibrated profile. When only latency and power coefficients changed (accuracy
    /// tables, voting and length spreads alike), the configuration spaces are kept with the new variants in
    /// them, which is far cheaper than building them anew; otherwise the planner is built from scratch.
    public func recalibrated(to profile: ProfileSet) throws -> Planner {
        let same =
            profile.accuracy == self.profile.accuracy && profile.variants.count == self.profile.variants.count
            && profile.variants.allSatisfy { id, variant in
                guard let old = self.profile.variants[id] else { return false }
                return old.voting == variant.voting && old.outputLength == variant.outputLength
                    && old.family == variant.family
                    && old.contextTokens == variant.contextTokens
                    && old.kvCacheBytesPerToken == variant.kvCacheBytesPerToken
            }
        guard same else { return try Planner(profile: profile, policy: policy).applying(overlay) }
        return Planner(sharing: self, overlay: overlay, profile: profile, spaces: spaces.replacingVariants(of: profile))
    }

    /// The same profile and policy with learned estimates in place. Fronts are built afresh for the task classes in
    /// `changed` (all of them when nil); the others' cached fronts carry over, since their estimates are the same.
    public func applying(_ overlay: LearnedOverlay, changed: Set<String>? = nil) -> Planner {
        let fresh = Planner(sharing: self, overlay: overlay)
        if let changed {
            let kept = cache.withLock { $0.filter { !changed.contains($0.key.task) } }
            fresh.cache.withLock { $0 = kept }
        }
        return fresh
    }

    /// Sorted task classes: the profile's benchmarks and the policy's classes.
    public var taskClasses: [String] { spaces.names.sorted() }

    /// The configuration space of a task class.
    public func space(_ taskClass: String) -> ConfigurationSpace? { spaces.space(taskClass) }

    /// Number of fronts currently cached.
    public var cachedFronts: Int { cache.withLock { $0.count } }

    /// The vote of a candidate's configuration, as the learner and the estimates use it.
    public func voteContext(_ candidate: ConfigurationSpace.Candidate, options: Int) -> VoteContext {
        VoteContext(
            samples: candidate.configuration.parallel,
            abstention: candidate.abstention,
            concentration: candidate.variant.voting.parameters(atTokens: candidate.voteTokens).concentration,
            options: options
        )
    }

    /// The benchmark table behind a task class, or an error listing the known classes.
    public func table(taskClass: String) throws -> AccuracyTable {
        guard spaces.names.contains(taskClass), let table = profile.accuracy[policy.benchmark(of: taskClass)] else {
            throw unknownTask(taskClass)
        }
        return table
    }

    private func unknownTask(_ name: String) -> EdgePlanError {
        EdgePlanError(
            .unknownTask,
            "unknown task class '\(name)'; known: \(taskClasses.joined(separator: ", "))",
            field: "task"
        )
    }

    /// The Pareto front of a task class at an input length, from the cache when present.
    public func front(task: String, inputTokens: Int, ranking: AccuracyRanking = .expected) throws -> ParetoFront {
        guard inputTokens > 0, inputTokens <= PlanRequest.maxInputTokens else {
            throw EdgePlanError.invalidInput(
                "input tokens must be within 1...\(PlanRequest.maxInputTokens) (got \(inputTokens))",
                field: "inputTokens"
            )
        }
        let key = FrontKey(task: task, bucket: Self.bucket(inputTokens), ranking: ranking)
        if let cached = cache.withLock({ $0[key] }) { return cached }
        let front = try buildFront(task: task, inputTokens: key.bucket, ranking: ranking)
        cache.withLock { $0[key] = front }
        return front
    }

    /// The front at exactly `inputTokens`, as `plan` figures a configuration at that input (``front(task:inputTokens:ranking:)``
    /// plans on the input's bucket, whose upper edge is conservative but differs from the request's own figures).
    /// Not cached: for `Frontier` and the CLI, off the planning path.
    public func exactFront(task: String, inputTokens: Int, ranking: AccuracyRanking = .expected) throws -> ParetoFront {
        guard inputTokens > 0, inputTokens <= PlanRequest.maxInputTokens else {
            throw EdgePlanError.invalidInput(
                "input tokens must be within 1...\(PlanRequest.maxInputTokens) (got \(inputTokens))",
                field: "inputTokens"
            )
        }
        return try buildFront(task: task, inputTokens: inputTokens, ranking: ranking)
    }

    /// Builds a front without the cache (what a cold request pays).
    ///
    /// Two passes: each allowed candidate is first judged only on what the front compares (accuracy, latency and
    /// energy at the percentile) and on whether it fits; only the points that survive are evaluated in full.
    public func buildFront(task: String, inputTokens: Int, ranking: AccuracyRanking = .expected) throws -> ParetoFront {
        _ = try table(taskClass: task)
        let space = spaces.space(task)!
        let count = space.candidates.count
        // Figures by candidate position, so that ties keep the candidates' order.
        var judged = [Bool](repeating: false, count: count)
        var scores = [Double](repeating: 0, count: count)
        var latency = scores
        var energy = scores
        for group in spaces.frontInputs(task)!.groups {
            for entry in group.entries {
                guard
                    let figures = percentileFigures(
                        entry,
                        variant: group.variant,
                        space: space,
                        inputTokens: inputTokens
                    )
                else { continue }
                judged[entry.position] = true
                scores[entry.position] = ranking.score(figures.estimate)
                latency[entry.position] = figures.latencyS
                energy[entry.position] = figures.energyJ
            }
        }
        let positions = judged.indices.filter { judged[$0] }
        let kept = ParetoFront.nonDominatedOrder(
            scores: positions.map { scores[$0] },
            energy: positions.map { energy[$0] },
            latency: positions.map { latency[$0] }
        )
        let points = kept.map { evaluate(space.candidates[positions[$0]], task: task, inputTokens: inputTokens) }
        return ParetoFront(task: task, inputTokens: inputTokens, ranking: ranking, front: points)
    }

    /// What the front filter reads of one candidate, or nil when it does not fit memory or context: the same
    /// figures ``evaluate(_:task:inputTokens:)`` gives, without the mean prediction's memory and cost.
    private func percentileFigures(
        _ entry: FrontInputs.Entry,
        variant: ModelVariant,
        space: ConfigurationSpace,
        inputTokens: Int
    )
        -> (estimate: AccuracyEstimate, latencyS: Double, energyJ: Double)?
    {
        var estimate = entry.accuracy
        var meanTokens = entry.meanTokens
        var tail = entry.tailTokens
        if !overlay.isEmpty {
            let key = LearnedOverlay.Key(
                taskClass: space.task,
                configuration: space.candidates[entry.position].configuration
            )
            if let learned = overlay.lengths[key] {
                meanTokens = learned.meanTokens
                tail = learned.quantileOfMaximum(policy.latencyPercentile, samples: entry.parallel)
            }
            estimate = overlay.accuracy[key] ?? estimate
        }
        let usableGiB = profile.device.usableMemoryGiB
        guard Double(inputTokens) + meanTokens <= Double(variant.contextTokens),
            predictor.memoryGiB(variant, input: inputTokens, output: meanTokens, parallel: entry.parallel) <= usableGiB
        else { return nil }
        let tokens =
            policy.latencyBasis == .mean ? meanTokens : min(tail, Double(max(variant.contextTokens - inputTokens, 1)))
        guard predictor.memoryGiB(variant, input: inputTokens, output: tokens, parallel: entry.parallel) <= usableGiB
        else { return nil }
        let figures = predictor.latencyAndEnergy(variant, input: inputTokens, output: tokens, parallel: entry.parallel)
        return (estimate, figures.latencyS, figures.energyJ)
    }

    public static func bucket(_ inputTokens: Int) -> Int {
        max(1, (inputTokens + bucketTokens - 1) / bucketTokens) * bucketTokens
    }

    /// One candidate evaluated in full: its prediction at the mean length and its figures at the percentile.
    func evaluate(_ candidate: ConfigurationSpace.Candidate, task: String, inputTokens: Int) -> EvaluatedConfiguration {
        var length = candidate.outputLength
        var estimate = candidate.accuracy
        // Without learned estimates (the usual cold start) no key is hashed.
        if !overlay.isEmpty {
            let key = LearnedOverlay.Key(taskClass: task, configuration: candidate.configuration)
            length = overlay.lengths[key] ?? length
            estimate = overlay.accuracy[key] ?? estimate
        }
        let k = candidate.configuration.parallel
        let mean = predictor.predict(candidate.variant, input: inputTokens, output: length.meanTokens, parallel: k)
        let tail = min(
            length.quantileOfMaximum(policy.latencyPercentile, samples: k),
            Double(max(candidate.variant.contextTokens - inputTokens, 1))
        )
        let atTail =
            policy.latencyBasis == .mean
            ? (latencyS: mean.latencyS, energyJ: mean.energyJ)
            : predictor.latencyAndEnergy(candidate.variant, input: inputTokens, output: tail, parallel: k)
        return EvaluatedConfiguration(
            configuration: candidate.configuration,
            estimate: estimate,
            outputLength: length,
            mean: mean,
            latencyPercentileS: atTail.latencyS,
            energyPercentileJ: atTail.energyJ,
            percentileOutputTokens: policy.latencyBasis == .mean ? length.meanTokens : tail,
            inputTokens: inputTokens
        )
    }

    /// The limits a request resolves to once the policy's defaults fill the gaps.
    public struct Limits: Sendable, Equatable {
        public var deadlineS: Double
        public var energyBudgetJ: Double?
        public var minAccuracy: Double
        public var objective: Objective
        public var inputTokens: Int
        /// Chance on the task's answer options, when it has them.
        public var chance: Double? = nil
        /// The engine's context for one sequence (a llama-server slot), when the request names it.
        public var contextTokens: Int? = nil

        /// The context a configuration of `variant` runs in: the model's, or the engine's per sequence when smaller.
        public func context(of variant: ModelVariant) -> Int {
            min(variant.contextTokens, contextTokens ?? Int.max)
        }
    }

    /// Fills a request's gaps from the policy: deadline, energy budget, accuracy floor, objective, input length.
    public func limits(_ request: PlanRequest) throws -> Limits {
        try request.validate()
        guard let defaults = defaults[request.task] else { throw unknownTask(request.task) }
        guard let deadlineS = request.deadlineS ?? defaults.deadlineS else {
            throw EdgePlanError.invalidInput(
                "no deadline given and the policy has no default deadline for task '\(request.task)'",
                field: "deadline"
            )
        }
        return Limits(
            deadlineS: deadlineS,
            energyBudgetJ: request.energyBudgetJ ?? defaults.energyBudgetJ,
            minAccuracy: max(request.minAccuracy ?? 0, defaults.minAccuracy),
            objective: request.objective ?? defaults.objective,
            inputTokens: request.inputTokens ?? defaults.inputTokens,
            chance: defaults.chance,
            contextTokens: request.contextTokens
        )
    }

    /// Solves one request: the best feasible point on the front, re-evaluated at the exact input length.
    public func plan(_ request: PlanRequest) throws -> PlanOutcome {
        var none: SystemRandomNumberGenerator? = nil
        return try plan(request, random: &none)
    }

    /// Solves one request; with `explore: thompson` in the policy, `random` draws which near-best point to try.
    public func plan<R: RandomNumberGenerator>(_ request: PlanRequest, random: inout R?) throws -> PlanOutcome {
        let limits = try self.limits(request)
        guard let choice = try choose(task: request.task, limits: limits, random: &random) else {
            let front = try self.front(
                task: request.task,
                inputTokens: limits.inputTokens,
                ranking: limits.objective.ranking
            )
            return .infeasible(
                explain(
                    front: front,
                    task: request.task,
                    latencyLimitS: limits.deadlineS * (1 - policy.safetyMargin(of: request.task)),
                    limits: limits
                )
            )
        }
        var plan = makePlan(choice.point, request: request, limits: limits)
        plan.explored = choice.explored
        plan.explorationLoss = choice.loss
        return .plan(plan)
    }

    /// The decision alone, on resolved limits: the chosen front point, whether exploration picked it and the expected
    /// accuracy that gave up against the greedy best, or nil when no point is feasible. ``plan(_:random:)`` builds its
    /// answer around this; a simulation needs no more.
    public func choose<R: RandomNumberGenerator>(
        task: String,
        limits: Limits,
        random: inout R?
    ) throws -> (point: EvaluatedConfiguration, explored: Bool, loss: Double)? {
        let ranking = limits.objective.ranking
        let front = try self.front(task: task, inputTokens: limits.inputTokens, ranking: ranking)
        let latencyLimitS = limits.deadlineS * (1 - policy.safetyMargin(of: task))

        // Front points are sorted by accuracy, then energy, then latency: the first feasible one has the
        // highest accuracy; for min-energy the cheapest feasible one wins, ties going to higher accuracy.
        let feasible = front.points.lazy.filter { point in
            self.fitsContext(point, limits: limits)
                && point.latencyPercentileS <= latencyLimitS
                && limits.energyBudgetJ.map { point.energyPercentileJ <= $0 } ?? true
                && ranking.score(point) >= limits.minAccuracy
        }
        var best: EvaluatedConfiguration?
        switch limits.objective {
        case .maxAccuracy, .maxAccuracyLowerBound: best = feasible.first
        case .minEnergy:
            best = feasible.reduce(nil) { current, point in
                current.map { $0.energyPercentileJ <= point.energyPercentileJ ? $0 : point } ?? point
            }
        }
        guard let greedy = best else { return nil }
        // A share `rate` of the plans draw among the near-best; the rest take the greedy best. Without the gate, a
        // dozen contenders within maxLoss would make nearly every plan an exploration.
        if case let .thompson(maxLoss, rate) = policy.explore, limits.objective != .minEnergy, random != nil,
            Double.random(in: 0..<1, using: &random!) < rate
        {
            let contenders = Array(feasible.prefix { ranking.score($0) >= ranking.score(greedy) - maxLoss }.prefix(16))
            if contenders.count > 1, let draw = Self.thompsonDraw(contenders, random: &random!) {
                let explored = draw.configuration != greedy.configuration
                return (draw, explored, explored ? max(0, ranking.score(greedy) - ranking.score(draw)) : 0)
            }
        }
        return (greedy, false, 0)
    }

    /// Whether a configuration's run fits its context at the request's input: a hard cap's whole budget (the engine is
    /// sent it as `max_tokens`), otherwise the mean output (as the front requires of the model's own context), after
    /// the prompt. A run that would fill its slot first stops there, unanswered.
    public func fitsContext(_ point: EvaluatedConfiguration, limits: Limits) -> Bool {
        guard let variant = profile.variants[point.configuration.variant] else { return false }
        let context = limits.context(of: variant)
        let input = limits.inputTokens
        if point.configuration.capped, let budget = point.configuration.budgetTokens {
            return input + budget <= context
        }
        return Double(input) + point.outputLength.meanTokens <= Double(context)
    }

    /// The engine's `max_tokens` for a configuration: its budget under a hard cap, otherwise what fits in the
    /// deadline and the context window.
    public func maxTokens(_ configuration: Configuration, limits: Limits) -> Int {
        if configuration.capped, let budget = configuration.budgetTokens { return budget }
        guard let variant = profile.variants[configuration.variant] else { return 1 }
        let reachable = predictor.maxOutputTokens(
            variant,
            input: limits.inputTokens,
            deadlineS: limits.deadlineS,
            parallel: configuration.parallel
        )
        return Self.maxTokens(
            configuration,
            contextTokens: limits.context(of: variant),
            inputTokens: limits.inputTokens,
            reachable: reachable
        )
    }

    private static func maxTokens(
        _ configuration: Configuration,
        contextTokens: Int,
        inputTokens: Int,
        reachable: Int?
    ) -> Int {
        let room = max(1, min(reachable ?? 1, contextTokens - inputTokens))
        if configuration.capped, let budget = configuration.budgetTokens { return budget }
        if let cap = configuration.mode.lengthCap(budget: configuration.budgetTokens, capped: false) {
            return min(cap, room)
        }
        return room
    }

    /// Thompson sampling: draw each contender's accuracy from its belief (a normal matched to its 80 % interval)
    /// and take the highest draw.
    static func thompsonDraw<R: RandomNumberGenerator>(
        _ contenders: [EvaluatedConfiguration],
        random: inout R
    ) -> EvaluatedConfiguration? {
        var best: (EvaluatedConfiguration, Double)?
        for point in contenders {
            let sd = max((point.estimate.high - point.estimate.low) / 2.5631, 1e-4)
            let u1 = Double.random(in: Double.ulpOfOne..<1, using: &random)
            let u2 = Double.random(in: 0..<1, using: &random)
            let draw = point.estimate.accuracy + sd * (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
            if best == nil || draw > best!.1 { best = (point, draw) }
        }
        return best?.0
    }

    func makePlan(_ chosen: EvaluatedConfiguration, request: PlanRequest, limits: Limits) -> Plan {
        let configuration = chosen.configuration
        let variant = profile.variants[configuration.variant]!
        let k = configuration.parallel
        let inputTokens = limits.inputTokens
        let length = chosen.outputLength
        let exact = predictor.predict(variant, input: inputTokens, output: length.meanTokens, parallel: k)
        let tailTokens = min(
            length.quantileOfMaximum(policy.latencyPercentile, samples: k),
            Double(max(limits.context(of: variant) - inputTokens, 1))
        )
        let atTail = predictor.predict(variant, input: inputTokens, output: tailTokens, parallel: k)
        let reachable = predictor.maxOutputTokens(variant, input: inputTokens, deadlineS: limits.deadlineS, parallel: k)
        let miss = reachable.map { length.exceedanceProbability(Double($0), samples: k) } ?? 1
        var plan = Plan(
            task: request.task,
            requestID: request.requestID,
            configuration: configuration,
            inputTokens: inputTokens,
            deadlineS: limits.deadlineS,
            energyBudgetJ: limits.energyBudgetJ,
            latencyS: exact.latencyS,
            latencyPercentileS: atTail.latencyS,
            percentile: policy.latencyPercentile,
            energyJ: exact.energyJ,
            energyPercentileJ: atTail.energyJ,
            estimate: chosen.estimate,
            costUSDPerMTok: exact.costUSDPerMTok,
            memoryGiB: exact.memoryGiB,
            missProbability: miss,
            outputLength: length,
            percentileOutputTokens: tailTokens,
            objective: limits.objective,
            engineRequest: EngineRequest(
                configuration: configuration,
                variant: variant,
                maxTokens: Self.maxTokens(
                    configuration,
                    contextTokens: limits.context(of: variant),
                    inputTokens: inputTokens,
                    reachable: reachable
                ),
                engine: policy.engine
            ),
            profileVersion: profile.version,
            policyVersion: policy.version
        )
        plan.engineRequest.endpoint = policy.endpoint(for: configuration.variant)?.url
        return plan
    }

    /// The context a configuration's run takes at the request's input: the prompt and the cap, or the mean output.
    private func contextNeed(_ point: EvaluatedConfiguration, _ limits: Limits) -> Int {
        let output =
            point.configuration.capped
            ? point.configuration.budgetTokens ?? 0 : Int(point.outputLength.meanTokens.rounded(.up))
        return limits.inputTokens + output
    }

    private func explain(front: ParetoFront, task: String, latencyLimitS: Double, limits: Limits) -> Infeasibility {
        let ranking = front.ranking
        // The context first: a prompt that leaves no room for an answer fails every other limit too.
        let allowed = spaces.space(task)?.variantIDs ?? []
        let widest = allowed.compactMap { profile.variants[$0] }.map { limits.context(of: $0) }.max()
        if let widest, limits.inputTokens >= widest {
            let whose =
                limits.contextTokens.map { "the engine's \($0)-token context per sequence" } ?? "the model's context"
            return Infeasibility(
                task: task,
                limit: .context,
                message:
                    "the prompt's \(limits.inputTokens) tokens leave no room for an answer in \(whose) (\(widest) tokens at most among the task's models)",
                closest: nil,
                missBy: Double(limits.inputTokens + 1 - widest),
                requested: Double(widest)
            )
        }
        let points = front.points.filter { fitsContext($0, limits: limits) }
        if points.isEmpty, let smallest = front.points.min(by: { contextNeed($0, limits) < contextNeed($1, limits) }) {
            let variant = profile.variants[smallest.configuration.variant]!
            let context = limits.context(of: variant)
            return Infeasibility(
                task: task,
                limit: .context,
                message:
                    "no configuration fits the prompt's \(limits.inputTokens) tokens and its output in the \(context)-token context; the smallest, \(smallest.configuration), needs \(contextNeed(smallest, limits)) tokens",
                closest: smallest,
                missBy: Double(contextNeed(smallest, limits) - context),
                requested: Double(context)
            )
        }
        guard !points.isEmpty else {
            return Infeasibility(
                task: task,
                limit: .policy,
                message: "the policy for task '\(task)' allows no configuration that fits in memory",
                closest: nil,
                missBy: nil,
                requested: nil
            )
        }
        let onTime = points.filter { $0.latencyPercentileS <= latencyLimitS }
        guard !onTime.isEmpty else {
            let fastest = points.min { $0.latencyPercentileS < $1.latencyPercentileS }!
            return Infeasibility(
                task: task,
                limit: .deadline,
                message:
                    "no configuration finishes within \(latencyLimitS.significantDigits(4)) s at p\((policy.latencyPercentile * 100).significantDigits(4)) (deadline less safety margin); the fastest needs \(fastest.latencyPercentileS.significantDigits(4)) s",
                closest: fastest,
                missBy: fastest.latencyPercentileS - latencyLimitS,
                requested: latencyLimitS
            )
        }
        var candidates = onTime
        if let energyBudgetJ = limits.energyBudgetJ {
            let withinEnergy = onTime.filter { $0.energyPercentileJ <= energyBudgetJ }
            if withinEnergy.isEmpty {
                let frugal = onTime.min { $0.energyPercentileJ < $1.energyPercentileJ }!
                return Infeasibility(
                    task: task,
                    limit: .energyBudget,
                    message:
                        "no on-time configuration stays within \(energyBudgetJ.significantDigits(4)) J at p\((policy.latencyPercentile * 100).significantDigits(4)); the most frugal needs \(frugal.energyPercentileJ.significantDigits(4)) J",
                    closest: frugal,
                    missBy: frugal.energyPercentileJ - energyBudgetJ,
                    requested: energyBudgetJ
                )
            }
            candidates = withinEnergy
        }
        let best = candidates.max { ranking.score($0) < ranking.score($1) }!
        let figure = ranking == .lowerBound ? "accuracy (low end of its 80 % interval)" : "accuracy"
        return Infeasibility(
            task: task,
            limit: .minAccuracy,
            message:
                "no configuration within the limits reaches \(figure) \(limits.minAccuracy.significantDigits(3)) (the task's floor"
                + (limits.chance.map { chance in ", above chance \(chance.significantDigits(3))" } ?? "")
                + "); the best, \(best.configuration), reaches \(ranking.score(best).significantDigits(3))",
            closest: best,
            missBy: limits.minAccuracy - ranking.score(best),
            requested: limits.minAccuracy
        )
    }
}

extension Policy {
    /// Checks that the policy names only models, benchmarks and classes the profile has, and leaves each class
    /// something to run.
    public func check(against profile: ProfileSet) throws {
        let known = Set(profile.modelNames)
        for key in endpoints.keys.sorted() where key != "default" {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            let named = profile.variants.keys.contains { id in
                id.model == parts[0] && (parts.count == 1 || id.quantization.rawValue == parts[1])
            }
            guard named else {
                throw EdgePlanError(
                    .unknownModel,
                    "an endpoint for '\(key)', which the profile does not have; known models: \(profile.modelNames.joined(separator: ", ")) (MODEL or MODEL/QUANTIZATION, or default)",
                    field: "global.endpoints.\(key)"
                )
            }
        }
        for (name, task) in [("defaults", defaultTask)]
            + tasks.sorted(by: { $0.key < $1.key }).map({ ($0.key, $0.value) })
        {
            let field = name == "defaults" ? "defaults" : "tasks.\(name)"
            if name != "defaults" && profile.accuracy[benchmark(of: name)] == nil {
                if let like = task.like {
                    throw EdgePlanError(
                        .unknownTask,
                        "task class '\(name)' is like unknown benchmark '\(like)'; known benchmarks: \(profile.tasks.joined(separator: ", "))",
                        field: "\(field).like"
                    )
                }
                throw EdgePlanError(
                    .unknownTask,
                    "task class '\(name)' is no benchmark of the profile and names none with 'like'; known benchmarks: \(profile.tasks.joined(separator: ", "))",
                    field: field
                )
            }
            for model in (task.allowedModels ?? []).sorted() where !known.contains(model) {
                throw EdgePlanError(
                    .unknownModel,
                    "policy allows unknown model '\(model)'; known models: \(profile.modelNames.joined(separator: ", "))",
                    field: "\(field).allowed_models"
                )
            }
            if name != "defaults", let table = profile.accuracy[benchmark(of: name)] {
                // A listed thinking-budget mode is modeled from hard-cap rows where the engine enforces a budget.
                let modeledThinking = modelsThinkingBudget(task)
                let runnable = table.records.contains { record in
                    task.allows(
                        Configuration(
                            variant: record.variant,
                            mode: record.mode,
                            budgetTokens: record.budgetTokens,
                            capped: record.capped,
                            parallel: 1
                        )
                    )
                        || (modeledThinking && record.mode == .hard
                            && task.allows(
                                Configuration(
                                    variant: record.variant,
                                    mode: .thinkingBudget,
                                    budgetTokens: record.budgetTokens,
                                    capped: false,
                                    parallel: 1
                                )
                            ))
                }
                if !runnable {
                    throw EdgePlanError(
                        .invalidInput,
                        "policy for task '\(name)' excludes every model, quantization and mode the profile has data for",
                        field: field
                    )
                }
            }
        }
    }
}
