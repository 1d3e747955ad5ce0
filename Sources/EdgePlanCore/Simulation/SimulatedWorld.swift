import Foundation

/// The world a simulation runs in, apart from the policies' beliefs: the device as it truly is at each moment,
/// each configuration's true accuracy, and an oracle that plans on both. ``step(_:_:random:)`` runs one task for
/// one policy and feeds the outcome back to it as a `Report` would.
struct SimulatedWorld {
    /// What the world knows of one task class, looked up once per request.
    struct TaskClass {
        var answerOptions: Int
        var candidates: [Configuration: ConfigurationSpace.Candidate]
        /// True accuracy per configuration, filled as configurations run.
        var trueAccuracy: [Configuration: Double] = [:]
    }

    let profile: ProfileSet
    let truth: Truth
    let options: Simulator.Options
    /// Plans with the first policy's limits; its spaces and estimates are the profile's, as the truth shifts them.
    let truePlanner: Planner
    private let predictor: Predictor
    private(set) var classes: [String: TaskClass] = [:]
    private var oracle: (factor: Double, planner: Planner)?
    /// The device's variants at the current slowdown factor.
    private var deviceFactor = 1.0
    private var deviceVariants: [VariantID: ModelVariant]

    init(profile: ProfileSet, truth: Truth, policy: Policy, options: Simulator.Options) throws {
        self.profile = profile
        self.truth = truth
        self.options = options
        var oraclePolicy = policy
        oraclePolicy.explore = .off
        oraclePolicy.latencyBasis = .percentile
        truePlanner = try Planner(profile: profile, policy: oraclePolicy)
        predictor = Predictor(device: profile.device)
        deviceVariants = profile.variants
        for name in truePlanner.taskClasses {
            guard let space = truePlanner.space(name) else { continue }
            classes[name] = TaskClass(
                answerOptions: space.answerOptions,
                candidates: Dictionary(space.candidates.map { ($0.configuration, $0) }, uniquingKeysWith: { a, _ in a })
            )
        }
    }

    func trueSingleAccuracy(_ taskClass: String, _ candidate: ConfigurationSpace.Candidate) -> Double {
        min(
            max(
                candidate.single.accuracy + truth.shiftPoints(
                    taskClass: taskClass,
                    configuration: candidate.configuration
                ) / 100,
                0.001
            ),
            0.999
        )
    }

    /// The true accuracy of a configuration of a class: the shifted single-sample accuracy through the vote.
    mutating func trueAccuracy(_ taskClass: String, _ candidate: ConfigurationSpace.Candidate) -> Double {
        if let known = classes[taskClass]?.trueAccuracy[candidate.configuration] { return known }
        let options = classes[taskClass]?.answerOptions ?? 4
        let value = truePlanner.voteContext(candidate, options: options).accuracy(
            trueSingleAccuracy(taskClass, candidate)
        )
        classes[taskClass]?.trueAccuracy[candidate.configuration] = value
        return value
    }

    /// The planner an oracle uses at slowdown `factor`: the true device and the true accuracies.
    mutating func oraclePlanner(factor: Double) throws -> Planner {
        if let oracle, oracle.factor == factor { return oracle.planner }
        let bare = try Planner(profile: Truth.scaled(profile, by: factor), policy: truePlanner.policy)
        var overlay = LearnedOverlay()
        for name in bare.taskClasses {
            guard let space = bare.space(name) else { continue }
            for candidate in space.candidates {
                let value = trueAccuracy(name, candidate)
                overlay.accuracy[.init(taskClass: name, configuration: candidate.configuration)] = AccuracyEstimate(
                    accuracy: value,
                    low: value,
                    high: value,
                    source: .learned
                )
            }
        }
        let planner = bare.applying(overlay)
        oracle = (factor, planner)
        return planner
    }

    /// The true lengths of a run's samples (the truth's length scale over the configuration's spread, its hard cap
    /// and the plan's max_tokens), and whether max_tokens cut one that was not capped by its mode.
    func drawSamples(
        _ candidate: ConfigurationSpace.Candidate,
        _ configuration: Configuration,
        maxTokens: Int,
        random: inout SplitMix64
    ) -> (samples: [Int], cut: Bool) {
        let length = candidate.outputLength
        let scale = log(truth.lengthScale)
        var samples: [Int] = []
        samples.reserveCapacity(configuration.parallel)
        var cut = false
        for _ in 0..<configuration.parallel {
            var tokens = exp(length.mu + scale + length.sigma * random.normal())
            if let cap = length.capTokens { tokens = min(tokens, Double(cap)) }
            if tokens > Double(maxTokens) {
                tokens = Double(maxTokens)
                if !configuration.capped { cut = true }
            }
            samples.append(max(1, Int(tokens.rounded())))
        }
        return (samples, cut)
    }

    /// A fixed configuration's max_tokens: its budget where capped, else what the context leaves after the prompt.
    func fixedMaxTokens(_ fixed: Configuration, inputTokens: Int) -> Int {
        let variant = profile.variants[fixed.variant]!
        return fixed.capped
            ? fixed.budgetTokens ?? variant.contextTokens : max(1, variant.contextTokens - inputTokens)
    }

    /// A variant as the device truly runs it at slowdown `factor` (the scaled profile is kept while the factor holds).
    mutating func deviceVariant(_ id: VariantID, at factor: Double) -> ModelVariant? {
        if deviceFactor != factor {
            deviceFactor = factor
            deviceVariants = Truth.scaled(profile, by: factor).variants
        }
        return deviceVariants[id]
    }

    /// Runs one task for one policy: queue, decide, run on the true device, tally, report back.
    mutating func step(_ run: inout Simulator.Run, _ task: WorkloadTask, random: inout SplitMix64) throws {
        let start = max(task.arrivalS, run.deviceFreeAt)
        var limits = try truePlanner.limits(
            PlanRequest(
                task: task.taskClass,
                deadlineS: task.deadlineS,
                energyBudgetJ: task.energyBudgetJ,
                inputTokens: task.inputTokens
            )
        )
        let deadlineS = limits.deadlineS
        let window = Int(task.arrivalS / options.windowS)
        let deadlineBin = Int(log2(max(deadlineS, 0.125)).rounded(.down))
        var outcome = RequestOutcome()
        outcome.waitS = start - task.arrivalS
        defer {
            run.overall.add(outcome)
            run.classes[task.taskClass, default: SimulationTally()].add(outcome)
            run.windows[window, default: SimulationWindow()].add(outcome)
            run.byDeadline[deadlineBin, default: SimulationWindow()].add(outcome)
        }
        // What is left of the deadline once the device is free is what every planner plans for.
        limits.deadlineS = deadlineS - outcome.waitS
        guard limits.deadlineS > 0 else {
            outcome.expiredInQueue = true
            return
        }
        let factor = truth.slowdown(at: start)
        var noDraw: SplitMix64? = nil
        if let best = try oraclePlanner(factor: factor).choose(task: task.taskClass, limits: limits, random: &noDraw) {
            outcome.oracleAccuracy = best.point.estimate.accuracy
        }
        // Decide.
        let configuration: Configuration
        let maxTokens: Int
        switch run.spec.kind {
        case let .fixed(fixed):
            configuration = fixed
            maxTokens = fixedMaxTokens(fixed, inputTokens: limits.inputTokens)
        case .planner:
            var runLimits = try run.planner.limits(
                PlanRequest(
                    task: task.taskClass,
                    deadlineS: limits.deadlineS,
                    energyBudgetJ: limits.energyBudgetJ,
                    inputTokens: limits.inputTokens
                )
            )
            runLimits.deadlineS = limits.deadlineS
            var draw: SplitMix64? = SplitMix64(seed: random.next())
            guard let choice = try run.planner.choose(task: task.taskClass, limits: runLimits, random: &draw) else {
                outcome.infeasible = true
                return
            }
            configuration = choice.point.configuration
            maxTokens = run.planner.maxTokens(configuration, limits: runLimits)
        }
        guard let candidate = classes[task.taskClass]?.candidates[configuration] else {
            outcome.infeasible = true
            return
        }
        // Run it in the true world.
        let k = configuration.parallel
        let (samples, cut) = drawSamples(candidate, configuration, maxTokens: maxTokens, random: &random)
        let longest = samples.max()!
        let variant = deviceVariant(configuration.variant, at: factor) ?? candidate.variant
        let predicted = predictor.predict(variant, input: limits.inputTokens, output: Double(longest), parallel: k)
        let noise = exp(truth.timingNoise * random.normal())
        let latency = predicted.latencyS * noise
        let energy = predicted.energyJ * noise
        let finish = start + latency
        run.deviceFreeAt = finish
        let accuracy = trueAccuracy(task.taskClass, candidate)
        let correct = !cut && random.uniform() < accuracy
        outcome.onTime = finish - task.arrivalS <= deadlineS
        outcome.correct = correct && outcome.onTime
        // A late answer is worth nothing to the robot: expected accuracy counts on-time runs only.
        outcome.expectedAccuracy = outcome.onTime ? accuracy : 0
        outcome.energyJ = energy
        outcome.tokens = Double(limits.inputTokens + samples.reduce(0, +))
        outcome.costUSD =
            energy / 3.6e6 * profile.device.electricityUSDPerKWh + latency / 3600 * profile.device.hardwareUSDPerHour
        // What the reporter says happened (the world above is what did).
        let lying = options.reporter == .optimisticLiar
        let reported = lying ? samples.map { max(1, $0 / 2) } : samples
        try report(
            &run,
            RunReport(
                variant: configuration.variant,
                inputTokens: limits.inputTokens,
                outputTokens: lying ? max(1, longest / 2) : longest,
                parallel: k,
                latencyS: lying ? latency * 0.4 : latency,
                energyJ: lying ? energy * 0.4 : energy,
                time: finish
            ),
            LearningOutcome(
                taskClass: task.taskClass,
                configuration: configuration,
                correct: lying ? !cut : correct,
                sampleOutputTokens: reported,
                peer: 0,
                time: finish
            )
        )
    }

    /// Feeds an outcome back as the scheduler's `Report` would: to the policy's calibration loop and learner.
    /// Both are mutated in place (optional chaining): a copy would duplicate their windows and posteriors.
    func report(_ run: inout Simulator.Run, _ measured: RunReport, _ learned: LearningOutcome) throws {
        if run.loop != nil {
            var events: [CalibrationLoop.Event] = []
            let mode = truth.powerMode(at: measured.time)
            if mode != run.context {
                run.context = mode
                events += run.loop!.setContext(mode, at: measured.time)
            }
            events += run.loop!.report(measured, at: measured.time)
            if measured.time - run.lastRefit >= options.refitIntervalS {
                run.lastRefit = measured.time
                events += run.loop!.periodicRefit(at: measured.time)
            }
            for event in events {
                if case let .recalibrated(_, _, profile) = event {
                    run.recalibrations += 1
                    // The spaces and the learned overlay carry over: only latency and power coefficients changed.
                    run.planner = try run.planner.recalibrated(to: profile)
                }
            }
        }
        if run.learner != nil {
            run.learner!.learn(learned, planner: run.planner, deferRebuild: true)
            run.pending += 1
            if run.pending >= options.applyEvery {
                // A new planner (and cold fronts) only when what was learned moved an estimate materially.
                let rebuilt = run.learner!.rebuildPending(planner: run.planner)
                if rebuilt.change > options.materialChange {
                    run.planner = run.planner.applying(run.learner!.overlay, changed: rebuilt.classes)
                    run.learnedUpdates += 1
                }
                run.pending = 0
            }
        }
    }
}
