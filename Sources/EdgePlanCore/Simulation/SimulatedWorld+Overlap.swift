import Foundation

/// Tasks that overlap: each starts as it arrives on its model's engine, beside whatever runs there, and every run's
/// pace follows the engine's concurrency curve (``EngineTimeline/Engine``) in the true world. A policy with the ledger
/// on plans each request against the runs it admitted (``AdmittedRuns``, as the daemon does); with it off, as if the
/// engine were idle. A run still going at its deadline is cut there, as a client cuts it; a run a higher-priority plan
/// names yields at once. Neither teaches anything; a finished run is reported with the sequences that ran beside it
/// where the ledger knew them.
extension SimulatedWorld {
    struct FlightKey: Hashable {
        var model: String
        var position: Int
    }

    /// A run on a shared engine, with what its outcome needs once it ends.
    struct Flight {
        var requestID: String
        var task: WorkloadTask
        var deadlineS: Double
        var inputTokens: Int
        var configuration: Configuration
        var samples: [Int]
        var cappedCut: Bool
        var accuracy: Double
        var correctDraw: Bool
        var oracleAccuracy: Double
    }

    /// Starts one task for one policy on its model's shared engine.
    mutating func start(_ run: inout Simulator.Run, _ task: WorkloadTask, random: inout SplitMix64) throws {
        try settle(&run, until: task.arrivalS)
        let now = task.arrivalS
        let limits = try truePlanner.limits(
            PlanRequest(
                task: task.taskClass,
                deadlineS: task.deadlineS,
                energyBudgetJ: task.energyBudgetJ,
                inputTokens: task.inputTokens
            )
        )
        var outcome = RequestOutcome()
        let factor = truth.slowdown(at: now)
        var noDraw: SplitMix64? = nil
        if let best = try oraclePlanner(factor: factor).choose(task: task.taskClass, limits: limits, random: &noDraw) {
            outcome.oracleAccuracy = best.point.estimate.accuracy
        }
        let requestID = "r\(run.started)"
        run.started += 1
        // Decide.
        let configuration: Configuration
        let maxTokens: Int
        var admitted: Plan?
        switch run.spec.kind {
        case let .fixed(fixed):
            configuration = fixed
            maxTokens = fixedMaxTokens(fixed, inputTokens: limits.inputTokens)
        case .planner:
            let request = PlanRequest(
                task: task.taskClass,
                deadlineS: limits.deadlineS,
                energyBudgetJ: limits.energyBudgetJ,
                inputTokens: limits.inputTokens,
                requestID: requestID
            )
            let runLimits = try run.planner.limits(request)
            if run.planner.policy.ledger {
                let load = run.admitted.load(at: now)
                let priority = run.planner.policy.task(task.taskClass).priority
                guard case let .plan(plan) = try run.planner.plan(request, load: load, priority: priority) else {
                    outcome.infeasible = true
                    tally(&run, task, limits.deadlineS, outcome)
                    return
                }
                configuration = plan.configuration
                admitted = plan
            } else {
                var draw: SplitMix64? = SplitMix64(seed: random.next())
                guard let choice = try run.planner.choose(task: task.taskClass, limits: runLimits, random: &draw) else {
                    outcome.infeasible = true
                    tally(&run, task, limits.deadlineS, outcome)
                    return
                }
                configuration = choice.point.configuration
            }
            maxTokens = run.planner.maxTokens(configuration, limits: runLimits)
        }
        guard let candidate = classes[task.taskClass]?.candidates[configuration] else {
            outcome.infeasible = true
            tally(&run, task, limits.deadlineS, outcome)
            return
        }
        // The true run: its samples' lengths, its pace on the device as it is now.
        let k = configuration.parallel
        let (samples, cappedCut) = drawSamples(candidate, configuration, maxTokens: maxTokens, random: &random)
        let variant = deviceVariant(configuration.variant, at: factor) ?? candidate.variant
        let noise = exp(truth.timingNoise * random.normal())
        var trueRun = variant.timelineRun(
            id: requestID,
            parallel: k,
            input: limits.inputTokens,
            tokens: Double(samples.max()!)
        )
        trueRun.stepS *= noise
        trueRun.prefillS *= noise
        let accuracy = trueAccuracy(task.taskClass, candidate)
        let correctDraw = random.uniform() < accuracy
        let model = configuration.variant.model
        // Runs this plan made yield stop now.
        if let plan = admitted, let planned = run.planner.profile.variants[configuration.variant] {
            let priority = run.planner.policy.task(task.taskClass).priority
            let yielded = run.admitted.admit(
                LedgerEntry(plan: plan, variant: planned, priority: priority, at: now),
                load: plan.load,
                at: now
            )
            for id in yielded {
                guard let key = run.inFlight.first(where: { $0.value.requestID == id })?.key,
                    let stopped = run.engines[key.model]?.remove(position: key.position)
                else { continue }
                try end(&run, key, stopped, cut: false, preempted: true)
            }
        }
        if run.engines[model] == nil {
            var engine = EngineTimeline.Engine(concurrency: variant.engineCurve)
            engine.advance(to: now) { _, _, _ in }
            run.engines[model] = engine
        }
        let position = run.engines[model]!.add(trueRun, cutAt: now + limits.deadlineS)
        run.inFlight[FlightKey(model: model, position: position)] = Flight(
            requestID: requestID,
            task: task,
            deadlineS: limits.deadlineS,
            inputTokens: limits.inputTokens,
            configuration: configuration,
            samples: samples,
            cappedCut: cappedCut,
            accuracy: accuracy,
            correctDraw: correctDraw,
            oracleAccuracy: outcome.oracleAccuracy
        )
    }

    /// Plays a policy's engines forward to `time`, ending (and reporting) the runs that end by then, in time order.
    mutating func settle(_ run: inout Simulator.Run, until time: Double) throws {
        var ended: [(key: FlightKey, outcome: EngineTimeline.Outcome, cut: Bool)] = []
        for model in run.engines.keys.sorted() {
            run.engines[model]!.advance(to: time) { position, cut, outcome in
                ended.append((FlightKey(model: model, position: position), outcome, cut))
            }
        }
        for item in ended.sorted(by: { $0.outcome.endS < $1.outcome.endS }) {
            try end(&run, item.key, item.outcome, cut: item.cut, preempted: false)
        }
    }

    /// One run's end: tallied, taken out of the ledger, and reported when it finished.
    private mutating func end(
        _ run: inout Simulator.Run,
        _ key: FlightKey,
        _ ended: EngineTimeline.Outcome,
        cut: Bool,
        preempted: Bool
    ) throws {
        guard let flight = run.inFlight.removeValue(forKey: key) else { return }
        let latency = ended.endS - flight.task.arrivalS
        var outcome = RequestOutcome()
        outcome.waitS = max(0, ended.startS - flight.task.arrivalS)
        outcome.cut = cut
        outcome.preempted = preempted
        outcome.onTime = !cut && !preempted && latency <= flight.deadlineS + 1e-9
        outcome.correct = flight.correctDraw && !flight.cappedCut && outcome.onTime
        outcome.expectedAccuracy = outcome.onTime ? flight.accuracy : 0
        outcome.oracleAccuracy = flight.oracleAccuracy
        outcome.energyJ = ended.energyJ
        outcome.tokens = Double(flight.inputTokens + flight.samples.reduce(0, +))
        outcome.costUSD =
            ended.energyJ / 3.6e6 * profile.device.electricityUSDPerKWh + latency / 3600
            * profile.device.hardwareUSDPerHour
        tally(&run, flight.task, flight.deadlineS, outcome)
        let beside = run.planner.policy.ledger ? run.admitted.finish(flight.requestID, at: ended.endS) : nil
        // A run cut at its deadline or made to yield teaches nothing here.
        guard !cut, !preempted else { return }
        let k = flight.configuration.parallel
        let longest = flight.samples.max()!
        let lying = options.reporter == .optimisticLiar
        var measured = RunReport(
            variant: flight.configuration.variant,
            inputTokens: flight.inputTokens,
            outputTokens: lying ? max(1, longest / 2) : longest,
            parallel: k,
            latencyS: lying ? latency * 0.4 : latency,
            energyJ: lying ? ended.energyJ * 0.4 : ended.energyJ,
            time: ended.endS
        )
        if let beside, beside.meanSequences > Double(k) + 0.05 {
            measured.runningSequences = Int(beside.meanSequences.rounded(.up))
            measured.energyShare = Double(k) / beside.meanSequences
        }
        try report(
            &run,
            measured,
            LearningOutcome(
                taskClass: flight.task.taskClass,
                configuration: flight.configuration,
                correct: lying ? !flight.cappedCut : outcome.correct,
                sampleOutputTokens: lying ? flight.samples.map { max(1, $0 / 2) } : flight.samples,
                peer: 0,
                time: ended.endS
            )
        )
    }

    private func tally(_ run: inout Simulator.Run, _ task: WorkloadTask, _ deadlineS: Double, _ outcome: RequestOutcome)
    {
        let window = Int(task.arrivalS / options.windowS)
        let deadlineBin = Int(log2(max(deadlineS, 0.125)).rounded(.down))
        run.overall.add(outcome)
        run.classes[task.taskClass, default: SimulationTally()].add(outcome)
        run.windows[window, default: SimulationWindow()].add(outcome)
        run.byDeadline[deadlineBin, default: SimulationWindow()].add(outcome)
    }
}
