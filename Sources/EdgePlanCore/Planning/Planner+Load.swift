extension Planner {
    /// The concurrency curve the engine of `variant` follows (``ModelVariant/engineCurve``), built once per variant.
    func concurrency(of variant: ModelVariant) -> DecodeConcurrency {
        curves[variant.id] ?? variant.engineCurve
    }

    func timelineRun(
        id: String,
        variant: ModelVariant,
        parallel: Int,
        input: Int,
        tokens: Double
    ) -> EngineTimeline.Run {
        variant.timelineRun(id: id, parallel: parallel, input: input, tokens: tokens, curve: concurrency(of: variant))
    }

    /// A configuration predicted against the load: its end, its energy share, the admitted runs it delays, and those
    /// of lower priority that must yield for it (or for them) to make their deadlines. Nil when it cannot fit: it
    /// misses its own deadline, or pushes an admitted run of equal or higher priority past its deadline.
    public func predictBusy(
        _ point: EvaluatedConfiguration,
        limits: Limits,
        load: EngineLoad,
        priority: Int,
        latencyLimitS: Double,
        besideProfile: [(untilS: Double, sequences: Int)]? = nil,
        energyBudgetJ: Double? = nil
    ) -> BusyPrediction? {
        guard let variant = profile.variants[point.configuration.variant] else { return nil }
        let load = load.runs.allSatisfy { $0.model == variant.id.model } ? load : load.on(model: variant.id.model)
        let k = point.configuration.parallel
        let engine = EngineTimeline(concurrency: concurrency(of: variant))
        var yielding: [String] = []
        // Lower-priority runs yield one by one, latest deadline first, until everything left fits.
        let victims = load.runs.filter { $0.priority < priority }.sorted { $0.deadlineLeftS > $1.deadlineLeftS }
        let newcomer = timelineRun(
            id: "\u{0}new",
            variant: variant,
            parallel: k,
            input: limits.inputTokens,
            tokens: point.percentileOutputTokens
        )
        // With none that may yield, a point whose earliest possible end beside the load is past its limit is out
        // without playing the timeline: most of the front, beside a busy engine.
        if victims.isEmpty, let besideProfile, engine.boundsHold(sequences: load.sequences + k) {
            if engine.earliestEndS(newcomer, besideProfile: besideProfile) > latencyLimitS {
                // Debug builds (every test of the daemon and the CLI) check the shortcut against the full play.
                assert(
                    predictBusy(point, limits: limits, load: load, priority: priority, latencyLimitS: latencyLimitS)
                        == nil,
                    "the earliest end ruled out a point the timeline keeps"
                )
                return nil
            }
        }
        for count in 0...victims.count {
            yielding = victims.prefix(count).map(\.requestID)
            let kept = load.runs.filter { !yielding.contains($0.requestID) }
            let admitted = kept.map(\.timelineRun)
            let outcomes = engine.playInOrder(admitted + [newcomer])
            guard let mine = outcomes[kept.count] else { continue }
            // An admitted run pushed past its deadline by this one: late with it, and later than without it (played
            // without it only when some run is late at all).
            let late = kept.indices.filter { (outcomes[$0]?.endS ?? 0) > kept[$0].deadlineLeftS }
            let before = late.isEmpty ? [] : engine.playInOrder(admitted)
            let pushed = late.filter { (outcomes[$0]?.endS ?? 0) > (before[$0]?.endS ?? 0) + 1e-6 }.map { kept[$0] }
            if pushed.contains(where: { $0.priority >= priority }) { return nil }
            guard mine.endS <= latencyLimitS, pushed.isEmpty else { continue }
            // Over the budget at the percentile: out, as the caller would rule it, without playing the mean.
            if let energyBudgetJ, mine.energyJ > energyBudgetJ { return nil }
            let mean = engine.playInOrder(
                admitted + [
                    timelineRun(
                        id: newcomer.id,
                        variant: variant,
                        parallel: k,
                        input: limits.inputTokens,
                        tokens: point.outputLength.meanTokens
                    )
                ]
            )[kept.count]
            return BusyPrediction(
                latencyPercentileS: mine.endS,
                latencyS: mean?.endS ?? mine.endS,
                waitS: mine.startS,
                peakSequences: mine.peakSequences,
                meanSequences: mine.meanSequences,
                energyPercentileJ: mine.energyJ,
                energyJ: mean?.energyJ ?? mine.energyJ,
                sequencesBeside: kept.reduce(0) { $0 + $1.sequences },
                // Admitted runs it makes end later than they were last predicted to.
                delayed: kept.indices.compactMap { index in
                    guard let end = outcomes[index]?.endS, end > kept[index].predictedEndS + 1e-6 else { return nil }
                    return (kept[index].requestID, end)
                },
                preempts: yielding
            )
        }
        return nil
    }

    /// When a request that does not fit now would: the admitted run after whose end it fits, and in how many seconds.
    func fitsAfter(
        _ point: EvaluatedConfiguration,
        limits: Limits,
        load: EngineLoad,
        latencyLimitS: Double
    ) -> (requestID: String, inS: Double)? {
        guard let variant = profile.variants[point.configuration.variant] else { return nil }
        let load = load.on(model: variant.id.model)
        let engine = EngineTimeline(concurrency: concurrency(of: variant))
        let now = engine.play(load.runs.map(\.timelineRun))
        for (id, ended) in now.sorted(by: { $0.value.endS < $1.value.endS }) {
            // What is left of the others once this one has ended, and the request sent then with its whole deadline.
            let left = load.runs.compactMap { run -> EngineTimeline.Run? in
                guard let end = now[run.requestID]?.endS, end > ended.endS + 1e-9 else { return nil }
                var later = run.timelineRun
                let share = (end - ended.endS) / max(end, 1e-9)
                later.tokens *= share
                later.prefillS = max(0, later.prefillS - ended.endS)
                return later
            }
            let newcomer = timelineRun(
                id: "\u{0}new",
                variant: variant,
                parallel: point.configuration.parallel,
                input: limits.inputTokens,
                tokens: point.percentileOutputTokens
            )
            if let mine = engine.play(left + [newcomer])[newcomer.id], mine.endS <= latencyLimitS {
                return (id, ended.endS)
            }
        }
        return nil
    }
}

extension Planner {
    /// Solves one request on an engine that already runs `load`: the most accurate configuration (or, for min-energy,
    /// the most frugal) that meets the request's limits beside those runs, predicted with them, and that pushes no
    /// admitted run of equal or higher priority past its deadline; lower-priority runs that must yield for it are
    /// named. With no load this is ``plan(_:)``. No point is tried that already misses on an idle engine.
    public func plan(_ request: PlanRequest, load: EngineLoad, priority: Int) throws -> PlanOutcome {
        guard !load.isEmpty else { return try plan(request) }
        let limits = try self.limits(request)
        let ranking = limits.objective.ranking
        let front = try self.front(task: request.task, inputTokens: limits.inputTokens, ranking: ranking)
        let latencyLimitS = limits.deadlineS * (1 - policy.safetyMargin(of: request.task))
        var candidates = front.points.filter { point in
            fitsContext(point, limits: limits) && point.latencyPercentileS <= latencyLimitS
                && limits.energyBudgetJ.map { point.energyPercentileJ <= $0 } ?? true
                && ranking.score(point) >= limits.minAccuracy
        }
        if limits.objective == .minEnergy {
            candidates.sort { $0.energyPercentileJ < $1.energyPercentileJ }
        }
        guard !candidates.isEmpty else { return try plan(request) }
        let byModel = Dictionary(grouping: load.runs, by: \.model).mapValues { EngineLoad(runs: $0) }
        // Each model's engine as its admitted runs alone would play out: the floor every candidate is checked against.
        var profiles: [VariantID: [(untilS: Double, sequences: Int)]] = [:]
        for point in candidates.prefix(Self.busyCandidates) {
            let id = point.configuration.variant
            let modelLoad = byModel[id.model] ?? EngineLoad()
            if profiles[id] == nil, let variant = profile.variants[id] {
                profiles[id] = EngineTimeline(concurrency: concurrency(of: variant))
                    .decodingProfile(modelLoad.runs.map(\.timelineRun))
            }
            guard
                let busy = predictBusy(
                    point,
                    limits: limits,
                    load: modelLoad,
                    priority: priority,
                    latencyLimitS: latencyLimitS,
                    besideProfile: profiles[id],
                    energyBudgetJ: limits.energyBudgetJ
                )
            else { continue }
            if let budget = limits.energyBudgetJ, busy.energyPercentileJ > budget { continue }
            var plan = makePlan(point, request: request, limits: limits)
            plan.load = PlanLoad(
                runsBeside: (byModel[point.configuration.variant.model]?.runs.count ?? 0) - busy.preempts.count,
                sequencesBeside: busy.sequencesBeside,
                peakSequences: busy.peakSequences,
                meanSequences: busy.meanSequences,
                waitS: busy.waitS,
                idleLatencyPercentileS: plan.latencyPercentileS,
                preempts: busy.preempts,
                delayed: Dictionary(busy.delayed.map { ($0.requestID, $0.endS) }) { a, _ in a }
            )
            plan.latencyS = busy.latencyS
            plan.latencyPercentileS = busy.latencyPercentileS
            plan.energyJ = busy.energyJ
            plan.energyPercentileJ = busy.energyPercentileJ
            return .plan(plan)
        }
        let best = candidates[0]
        let after = fitsAfter(best, limits: limits, load: load, latencyLimitS: latencyLimitS)
        let running = "\(load.runs.count) admitted run\(load.runs.count == 1 ? "" : "s") (\(load.sequences) sequences)"
        var reason = Infeasibility(
            task: request.task,
            limit: .busy,
            message: "the engine is busy with \(running): no configuration meets the deadline beside them without "
                + "pushing one of equal or higher priority past its own"
                + (after.map {
                    ", \(best.configuration) fits after \($0.requestID) ends, in \($0.inS.significantDigits(3)) s"
                }
                    ?? ""),
            closest: best,
            missBy: nil,
            requested: latencyLimitS
        )
        reason.fitsAfter = after
        return .infeasible(reason)
    }

    /// Front points tried against a load, best first: each costs a play of the timeline.
    static let busyCandidates = 64
}
