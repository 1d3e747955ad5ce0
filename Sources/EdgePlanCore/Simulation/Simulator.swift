import Foundation

/// A policy under simulation: a planner policy and the feedback it uses, or a fixed configuration.
public struct SimulatedPolicy: Sendable {
    public enum Kind: Sendable {
        case planner(recalibrate: Bool, learn: Bool)
        case fixed(Configuration)
    }

    public var name: String
    public var policy: Policy
    public var kind: Kind

    public init(name: String, policy: Policy, kind: Kind) {
        self.name = name
        self.policy = policy
        self.kind = kind
    }

    /// The built-in baselines on a policy: `static` (no recalibration, no learning), `mean-latency` (plans on mean
    /// latency as the paper does), `fixed:MODEL/QUANT/MODE[/BUDGET]xK`.
    public static func baseline(_ name: String, on policy: Policy) throws -> SimulatedPolicy {
        switch name {
        case "static": return SimulatedPolicy(name: name, policy: policy, kind: .planner(recalibrate: false, learn: false))
        case "mean-latency":
            var mean = policy
            mean.latencyBasis = .mean
            return SimulatedPolicy(name: name, policy: mean, kind: .planner(recalibrate: true, learn: true))
        case "no-learning": return SimulatedPolicy(name: name, policy: policy, kind: .planner(recalibrate: true, learn: false))
        default:
            guard name.hasPrefix("fixed:") else {
                throw EdgePlanError.invalidInput("unknown baseline '\(name)'; use static, mean-latency, no-learning or fixed:MODEL/QUANT/MODE[/BUDGET]xK", field: "baseline")
            }
            let spec = name.dropFirst(6)
            let parts = spec.split(separator: "x", omittingEmptySubsequences: false)
            guard parts.count >= 2, let k = Int(parts.last!), k >= 1 else {
                throw EdgePlanError.invalidInput("'\(name)': give the parallel factor after 'x', e.g. fixed:DSR1-Qwen-1.5B/fp16/hard/128x4", field: "baseline")
            }
            let fields = parts.dropLast().joined(separator: "x").split(separator: "/").map(String.init)
            guard fields.count == 3 || fields.count == 4, let quant = Quantization(rawValue: fields[1]), let mode = LengthMode(rawValue: fields[2]) else {
                throw EdgePlanError.invalidInput("'\(name)' is not MODEL/QUANT/MODE[/BUDGET]xK", field: "baseline")
            }
            let budget = fields.count == 4 ? Int(fields[3]) : nil
            if fields.count == 4 && budget == nil { throw EdgePlanError.invalidInput("'\(fields[3])' is not a token budget", field: "baseline") }
            return SimulatedPolicy(name: name, policy: policy, kind: .fixed(Configuration(
                variant: VariantID(model: fields[0], quantization: quant), mode: mode, budgetTokens: budget, capped: mode == .hard, parallel: k)))
        }
    }
}

/// Simulates a stream of robot tasks for several policies on one device that runs one request at a time.
///
/// Each policy plans with the same ``Planner``, recalibrates with the same ``CalibrationLoop`` and learns with
/// the same ``Learner`` as the daemon; outcomes come from the ``Truth`` and go back as a `Report` would. All
/// policies see the same random draws for the same request, so differences are the policies'. Deterministic in
/// `seed`; memory does not grow with the number of requests.
public struct Simulator {
    public struct Options: Sendable {
        public var seed: UInt64
        /// Learned outcomes applied to the planner every this many reports (the daemon applies each at once).
        public var applyEvery: Int
        /// Width of the time windows plotted over time.
        public var windowS: Double
        /// Seconds between periodic refits, as the daemon's `--refit-interval`.
        public var refitIntervalS: Double
        /// Learned estimates are handed to the planner when one moved by more than this (accuracy fraction or
        /// relative mean length): 0.2 points of accuracy or 0.2 % of length.
        public var materialChange = 0.002

        public init(seed: UInt64 = 7, applyEvery: Int = 20, windowS: Double = 900, refitIntervalS: Double = 600) {
            self.seed = seed
            self.applyEvery = max(applyEvery, 1)
            self.windowS = windowS
            self.refitIntervalS = refitIntervalS
        }
    }

    /// One policy's run and what it measured.
    public struct Run: Sendable {
        public let spec: SimulatedPolicy
        var planner: Planner
        var loop: CalibrationLoop?
        var learner: Learner?
        var pending = 0
        var deviceFreeAt = 0.0
        var lastRefit = 0.0
        var context = "default"
        public internal(set) var overall = SimulationTally()
        public internal(set) var classes: [String: SimulationTally] = [:]
        public internal(set) var windows: [Int: SimulationWindow] = [:]
        public internal(set) var traces: [LearnedTrace] = []
        public internal(set) var recalibrations = 0
        /// (deadline, correct) bins for accuracy against deadline: log2 bins of the deadline in seconds.
        public internal(set) var byDeadline: [Int: SimulationWindow] = [:]
    }

    public let profile: ProfileSet
    public let truth: Truth
    public let options: Options
    public private(set) var runs: [Run]
    private var oracle: (factor: Double, planner: Planner)?
    /// The device's variants at the current slowdown factor.
    private var deviceFactor = 1.0
    private var deviceVariants: [VariantID: ModelVariant]
    private let truePlanner: Planner
    private var trueAccuracy: [String: [Configuration: Double]] = [:]
    private var candidates: [String: [Configuration: ConfigurationSpace.Candidate]] = [:]
    private var lastArrival = -Double.infinity
    public private(set) var processed = 0
    private var nextTraceAt: Double

    public init(profile: ProfileSet, truth: Truth, policies: [SimulatedPolicy], options: Options = Options()) throws {
        guard let first = policies.first else { throw EdgePlanError.invalidInput("nothing to simulate: give at least one policy", field: "policy") }
        self.profile = profile
        self.truth = truth
        self.options = options
        var oraclePolicy = first.policy
        oraclePolicy.explore = .off
        oraclePolicy.latencyBasis = .percentile
        truePlanner = try Planner(profile: profile, policy: oraclePolicy)
        deviceVariants = profile.variants
        runs = try policies.map { spec in
            let planner = try Planner(profile: profile, policy: spec.policy)
            var run = Run(spec: spec, planner: planner)
            if case let .planner(recalibrate, learn) = spec.kind {
                if recalibrate { run.loop = CalibrationLoop(profile: profile, at: 0) }
                if learn { run.learner = Learner(policy: spec.policy.learning) }
            }
            if case let .fixed(configuration) = spec.kind {
                guard planner.taskClasses.contains(where: { planner.space($0)?.candidates.contains { $0.configuration == configuration } ?? false }) else {
                    throw EdgePlanError.invalidInput("fixed configuration \(configuration) is in no task class's space of this profile", field: "baseline")
                }
            }
            return run
        }
        for name in truePlanner.taskClasses {
            guard let space = truePlanner.space(name) else { continue }
            candidates[name] = Dictionary(space.candidates.map { ($0.configuration, $0) }, uniquingKeysWith: { a, _ in a })
        }
        nextTraceAt = options.windowS
        for index in runs.indices where runs[index].learner != nil {
            runs[index].traces = truth.shifts.compactMap { shift in
                guard let candidate = candidates[shift.taskClass]?.values.filter({ $0.configuration.variant.model == shift.model && $0.configuration.parallel == 1
                    && (shift.mode == nil || $0.configuration.mode == shift.mode) }).min(by: { ($0.single.accuracy, "\($0.configuration)") > ($1.single.accuracy, "\($1.configuration)") }) else { return nil }
                let trueSingle = trueSingleAccuracy(shift.taskClass, candidate)
                return LearnedTrace(taskClass: shift.taskClass, group: candidate.group, truth: trueSingle, prior: candidate.single.accuracy)
            }
        }
    }

    func trueSingleAccuracy(_ taskClass: String, _ candidate: ConfigurationSpace.Candidate) -> Double {
        min(max(candidate.single.accuracy + truth.shiftPoints(taskClass: taskClass, configuration: candidate.configuration) / 100, 0.001), 0.999)
    }

    /// The true accuracy of a configuration of a class: the shifted single-sample accuracy through the vote.
    mutating func trueAccuracy(_ taskClass: String, _ candidate: ConfigurationSpace.Candidate, options answerOptions: Int) -> Double {
        if let known = trueAccuracy[taskClass]?[candidate.configuration] { return known }
        let value = truePlanner.voteContext(candidate, options: answerOptions).accuracy(trueSingleAccuracy(taskClass, candidate))
        trueAccuracy[taskClass, default: [:]][candidate.configuration] = value
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
                let value = trueAccuracy(name, candidate, options: space.answerOptions)
                overlay.accuracy[.init(taskClass: name, configuration: candidate.configuration)] = AccuracyEstimate(accuracy: value, low: value, high: value, source: .learned)
            }
        }
        let planner = bare.applying(overlay)
        oracle = (factor, planner)
        return planner
    }

    /// Runs one task for every policy.
    public mutating func process(_ task: WorkloadTask) throws {
        guard task.arrivalS >= lastArrival else {
            throw EdgePlanError.invalidInput("arrival times must not go backwards (\(task.arrivalS) s after \(lastArrival) s)", field: "at")
        }
        guard truePlanner.space(task.taskClass) != nil else {
            throw EdgePlanError(.unknownTask, "unknown task class '\(task.taskClass)'; the policy knows \(truePlanner.taskClasses.joined(separator: ", "))", field: "task")
        }
        lastArrival = task.arrivalS
        while task.arrivalS >= nextTraceAt {
            recordTraces(at: nextTraceAt)
            nextTraceAt += options.windowS
        }
        for index in runs.indices {
            var random = SplitMix64(seed: options.seed &+ UInt64(processed) &* 0x9E37_79B9_7F4A_7C15)
            // Moved out while it runs, so its tallies stay uniquely referenced (no copy per request).
            var run = runs.remove(at: index)
            defer { runs.insert(run, at: index) }
            try step(&run, task, random: &random)
        }
        processed += 1
    }

    private mutating func step(_ run: inout Run, _ task: WorkloadTask, random: inout SplitMix64) throws {
        let start = max(task.arrivalS, run.deviceFreeAt)
        let wait = start - task.arrivalS
        let limits = try truePlanner.limits(PlanRequest(task: task.taskClass, deadlineS: task.deadlineS, energyBudgetJ: task.energyBudgetJ, inputTokens: task.inputTokens))
        let space = truePlanner.space(task.taskClass)!
        let window = Int(task.arrivalS / options.windowS)
        let deadlineBin = Int(log2(max(limits.deadlineS, 0.125)).rounded(.down))
        var tally = SimulationTally()
        tally.requests = 1
        tally.addWait(wait)
        defer {
            run.overall.merge(tally)
            run.classes[task.taskClass, default: SimulationTally()].merge(tally)
            run.windows[window, default: SimulationWindow()].add(tally)
            run.byDeadline[deadlineBin, default: SimulationWindow()].add(tally)
        }
        let remaining = limits.deadlineS - wait
        let factor = truth.slowdown(at: start)
        let oracle = try oraclePlanner(factor: factor)
        if remaining > 0, case let .plan(best) = try oracle.plan(PlanRequest(task: task.taskClass, deadlineS: remaining, energyBudgetJ: limits.energyBudgetJ, inputTokens: limits.inputTokens)) {
            tally.oracleAccuracy = best.accuracy
        }
        guard remaining > 0 else {
            tally.expiredInQueue = 1
            return
        }
        // Decide.
        let configuration: Configuration
        var maxTokens: Int
        switch run.spec.kind {
        case let .fixed(fixed):
            configuration = fixed
            let variant = profile.variants[fixed.variant]!
            maxTokens = fixed.capped ? fixed.budgetTokens ?? variant.contextTokens : max(1, variant.contextTokens - limits.inputTokens)
        case .planner:
            let request = PlanRequest(task: task.taskClass, deadlineS: remaining, energyBudgetJ: limits.energyBudgetJ, inputTokens: limits.inputTokens)
            var draw: SplitMix64? = SplitMix64(seed: random.next())
            guard case let .plan(plan) = try run.planner.plan(request, random: &draw) else {
                tally.infeasible = 1
                return
            }
            configuration = plan.configuration
            maxTokens = plan.engineRequest.maxTokens
        }
        guard let candidate = candidates[task.taskClass]?[configuration] else {
            tally.infeasible = 1
            return
        }
        // Run it in the true world.
        let k = configuration.parallel
        let length = candidate.outputLength
        let scale = log(truth.lengthScale)
        var samples: [Int] = []
        samples.reserveCapacity(k)
        var cut = false
        for _ in 0..<k {
            var tokens = exp(length.mu + scale + length.sigma * random.normal())
            if let cap = length.capTokens { tokens = min(tokens, Double(cap)) }
            if tokens > Double(maxTokens) {
                tokens = Double(maxTokens)
                if !configuration.capped { cut = true }
            }
            samples.append(max(1, Int(tokens.rounded())))
        }
        let longest = samples.max()!
        if deviceFactor != factor {
            deviceFactor = factor
            deviceVariants = Truth.scaled(profile, by: factor).variants
        }
        let variant = deviceVariants[configuration.variant] ?? candidate.variant
        let predicted = Predictor(device: profile.device).predict(variant, input: limits.inputTokens, output: Double(longest), parallel: k)
        let noise = exp(truth.timingNoise * random.normal())
        let latency = predicted.latencyS * noise
        let energy = predicted.energyJ * noise
        let finish = start + latency
        run.deviceFreeAt = finish
        let accuracy = trueAccuracy(task.taskClass, candidate, options: space.answerOptions)
        let correct = !cut && random.uniform() < accuracy
        let onTime = finish - task.arrivalS <= limits.deadlineS
        tally.onTime = onTime ? 1 : 0
        tally.correct = correct && onTime ? 1 : 0
        // A late answer is worth nothing to the robot: expected accuracy counts on-time runs only.
        tally.expectedAccuracy = onTime ? accuracy : 0
        tally.energyJ = energy
        let tokens = Double(limits.inputTokens + samples.reduce(0, +))
        tally.tokens = tokens
        tally.costUSD = energy / 3.6e6 * profile.device.electricityUSDPerKWh + latency / 3600 * profile.device.hardwareUSDPerHour
        // Report back, as the scheduler would.
        // Loop and learner are mutated in place (optional chaining): a copy would duplicate their run windows
        // and posteriors on every request.
        if run.loop != nil {
            var events: [CalibrationLoop.Event] = []
            let mode = truth.powerMode(at: finish)
            if mode != run.context {
                run.context = mode
                events += run.loop!.setContext(mode, at: finish)
            }
            events += run.loop!.report(RunReport(variant: configuration.variant, inputTokens: limits.inputTokens, outputTokens: longest, parallel: k,
                                                 latencyS: latency, energyJ: energy, time: finish), at: finish)
            if finish - run.lastRefit >= options.refitIntervalS {
                run.lastRefit = finish
                events += run.loop!.periodicRefit(at: finish)
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
            let outcome = LearningOutcome(taskClass: task.taskClass, configuration: configuration, correct: correct, sampleOutputTokens: samples, peer: 0)
            run.learner!.learn(outcome, planner: run.planner, deferRebuild: true)
            run.pending += 1
            if run.pending >= options.applyEvery {
                // A new planner (and cold fronts) only when what was learned moved an estimate materially.
                let rebuilt = run.learner!.rebuildPending(planner: run.planner)
                if rebuilt.change > options.materialChange {
                    run.planner = run.planner.applying(run.learner!.overlay, changed: rebuilt.classes)
                }
                run.pending = 0
            }
        }
    }

    /// Closes the last time window of the learned traces.
    public mutating func finish() { recordTraces(at: lastArrival) }

    private mutating func recordTraces(at t: Double) {
        for index in runs.indices {
            guard let learner = runs[index].learner else { continue }
            for trace in runs[index].traces.indices {
                let entry = runs[index].traces[trace]
                let key = Learner.GroupKey(taskClass: entry.taskClass, group: entry.group)
                guard let candidate = candidates[entry.taskClass]?.values.first(where: { $0.group == entry.group && $0.configuration.parallel == 1 }) else { continue }
                if let posterior = learner.accuracy[key], posterior.observations > 0 {
                    let estimate = posterior.estimate(p0: candidate.single.accuracy, vote: VoteContext(samples: 1, abstention: 0, concentration: 1, options: 4))
                    runs[index].traces[trace].points.append((t, estimate.accuracy, estimate.low, estimate.high, posterior.observations))
                } else {
                    runs[index].traces[trace].points.append((t, entry.prior, candidate.single.low, candidate.single.high, 0))
                }
            }
        }
    }
}

extension SimulationTally {
    mutating func merge(_ other: SimulationTally) {
        requests += other.requests
        onTime += other.onTime
        infeasible += other.infeasible
        expiredInQueue += other.expiredInQueue
        correct += other.correct
        expectedAccuracy += other.expectedAccuracy
        oracleAccuracy += other.oracleAccuracy
        energyJ += other.energyJ
        costUSD += other.costUSD
        tokens += other.tokens
        waitS += other.waitS
        for (index, count) in other.waitHistogram.enumerated() where count > 0 { waitHistogram[index] += count }
    }
}

extension SimulationWindow {
    mutating func add(_ tally: SimulationTally) {
        requests += tally.requests
        onTime += tally.onTime
        correct += tally.correct
    }
}
