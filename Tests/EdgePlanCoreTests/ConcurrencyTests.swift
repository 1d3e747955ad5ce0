import EdgePlanCore
import Foundation
import Testing

/// Sequences sharing one engine: the step-factor curve, the timeline played forward, and planning against a load.
struct ConcurrencyTests {
    let curve = DecodeConcurrency(stepFactors: [2: 1.5, 4: 2.0], slots: 4, source: "test")

    @Test func stepFactorsJoinLinearlyAndSayWhenTheyExtrapolate() {
        #expect(curve.stepFactor(1).factor == 1)
        #expect(curve.stepFactor(2) == (1.5, false))
        #expect(curve.stepFactor(3) == (1.75, false))
        let past = curve.stepFactor(6)
        #expect(past.extrapolated && abs(past.factor - 2.5) < 1e-12)
        #expect(curve.measuredUpTo == 4)
    }

    @Test func aLoneRunIsItsPrefillAndItsStepsAtItsOwnSequences() {
        let timeline = EngineTimeline(concurrency: curve)
        let run = EngineTimeline.Run(id: "a", sequences: 2, prefillS: 0.5, tokens: 100, stepS: 0.01, started: false)
        let outcome = timeline.play([run])["a"]!
        #expect(abs(outcome.endS - (0.5 + 100 * 0.01 * 1.5)) < 1e-9)
        #expect(outcome.peakSequences == 2 && abs(outcome.meanSequences - 2) < 1e-9)
    }

    @Test func runsBesideEachOtherSlowEachOtherUntilOneEnds() {
        let timeline = EngineTimeline(concurrency: curve)
        let a = EngineTimeline.Run(id: "a", sequences: 1, prefillS: 0, tokens: 100, stepS: 0.01, started: true)
        let b = EngineTimeline.Run(id: "b", sequences: 1, prefillS: 0, tokens: 50, stepS: 0.01, started: false)
        let outcomes = timeline.play([a, b])
        // Both decode at 1.5 steps until b's 50 tokens are done (0.75 s); a's other 50 go at one step (0.5 s).
        #expect(abs(outcomes["b"]!.endS - 0.75) < 1e-9)
        #expect(abs(outcomes["a"]!.endS - 1.25) < 1e-9)
        #expect(
            outcomes["a"]!.peakSequences == 2 && outcomes["a"]!.meanSequences > 1 && outcomes["a"]!.meanSequences < 2
        )
    }

    @Test func aRunBeyondTheFreeSlotsWaitsForThem() {
        let timeline = EngineTimeline(concurrency: curve)
        let holder = EngineTimeline.Run(id: "h", sequences: 3, prefillS: 0, tokens: 100, stepS: 0.01, started: true)
        let late = EngineTimeline.Run(id: "l", sequences: 2, prefillS: 0.1, tokens: 10, stepS: 0.01, started: false)
        let outcomes = timeline.play([holder, late])
        let holderEnd = 100 * 0.01 * (1.5 + 2.0) / 2
        #expect(abs(outcomes["h"]!.endS - holderEnd) < 1e-9)
        #expect(abs(outcomes["l"]!.startS - holderEnd) < 1e-9)
        #expect(abs(outcomes["l"]!.endS - (holderEnd + 0.1 + 10 * 0.01 * 1.5)) < 1e-9)
    }

    @Test func energyIsSplitByTheSequencesDecoding() {
        let flat = DecodeConcurrency(stepFactors: [2: 1.0], powerFactors: [2: 1.0], source: "test")
        let timeline = EngineTimeline(concurrency: flat)
        let a = EngineTimeline.Run(
            id: "a",
            sequences: 1,
            prefillS: 0,
            tokens: 100,
            stepS: 0.01,
            started: true,
            decodePowerW: 10
        )
        let b = EngineTimeline.Run(
            id: "b",
            sequences: 1,
            prefillS: 0,
            tokens: 100,
            stepS: 0.01,
            started: false,
            decodePowerW: 10
        )
        let outcomes = timeline.play([a, b])
        // Side by side for 1 s at 10 W: each run's own energy is half, and together they are the engine's.
        #expect(abs(outcomes["a"]!.energyJ - 5) < 1e-9 && abs(outcomes["b"]!.energyJ - 5) < 1e-9)
    }

    /// The planner, with admitted runs on the engine: a plan's latency is predicted beside them, and a plan that would
    /// push one past its deadline is not returned.
    /// The class runs the 1.5B model alone, so that every plan shares the admitted runs' engine.
    @Test func planningAgainstALoadPredictsLaterEndsAndProtectsAdmittedDeadlines() throws {
        let policy = try PolicyDecoder.decode(
            "kind: policy\ntasks:\n  mmlu-redux:\n    allowed_models: [DSR1-Qwen-1.5B]\n",
            file: "test.yaml"
        )
        let planner = try Planner(profile: Fixtures.profile, policy: policy)
        let request = PlanRequest(task: "mmlu-redux", deadlineS: 30, inputTokens: 256)
        guard case let .plan(idle) = try planner.plan(request) else {
            Issue.record("expected a plan on an idle engine")
            return
        }
        // One long admitted run with plenty of slack: the newcomer is predicted slower than idle, and still planned.
        let relaxed = EngineLoad(runs: [
            .init(
                requestID: "long",
                taskClass: "natural-plan-trip",
                model: "DSR1-Qwen-1.5B",
                priority: 0,
                sequences: 4,
                prefillLeftS: 0,
                tokensLeft: 5000,
                stepS: 0.03,
                decodePowerW: 20,
                deadlineLeftS: 10_000,
                predictedEndS: 600
            )
        ])
        guard case let .plan(busy) = try planner.plan(request, load: relaxed, priority: 0) else {
            Issue.record("expected a plan beside a relaxed run")
            return
        }
        let assumed = try #require(busy.load)
        #expect(assumed.sequencesBeside == 4)
        #expect(busy.latencyPercentileS > 0 && busy.latencyPercentileS <= 30 * (1 - planner.policy.safetyMargin))
        #expect(assumed.peakSequences >= busy.configuration.parallel + 4)
        // The same configuration on the idle engine would have been predicted faster.
        #expect(busy.latencyPercentileS > assumed.idleLatencyPercentileS)
        #expect(idle.load == nil)
        // An admitted run with no slack at all: nothing may slow it, so an equal-priority newcomer is infeasible and
        // told when it would fit.
        let tight = EngineLoad(runs: [
            .init(
                requestID: "tight",
                taskClass: "mmlu-redux",
                model: "DSR1-Qwen-1.5B",
                priority: 0,
                sequences: 1,
                prefillLeftS: 0,
                tokensLeft: 200,
                stepS: 0.03,
                decodePowerW: 20,
                deadlineLeftS: 6.0001,
                predictedEndS: 6
            )
        ])
        guard case let .infeasible(refused) = try planner.plan(request, load: tight, priority: 0) else {
            Issue.record("expected infeasible beside a run with no slack")
            return
        }
        #expect(refused.limit == .busy)
        #expect(refused.fitsAfter?.requestID == "tight")
        #expect(abs((refused.fitsAfter?.inS ?? 0) - 6) < 1e-6)
        // A higher-priority newcomer fits by making the tight run yield, and names it.
        guard case let .plan(urgent) = try planner.plan(request, load: tight, priority: 1) else {
            Issue.record("expected a plan that preempts")
            return
        }
        #expect(urgent.load?.preempts == ["tight"])
    }

    /// The engine played in steps, as the simulator plays it: a run that joins later slows the one running, a run at
    /// its cut time stops there, and a run taken off (preempted) ends at once and frees its slots for the one waiting.
    @Test func anEnginePlayedInStepsGivesWhatOnePlayGives() {
        let a = EngineTimeline.Run(id: "a", sequences: 1, prefillS: 0, tokens: 100, stepS: 0.01, started: false)
        let b = EngineTimeline.Run(id: "b", sequences: 1, prefillS: 0, tokens: 50, stepS: 0.01, started: false)
        var engine = EngineTimeline.Engine(concurrency: curve)
        var ends: [Int: Double] = [:]
        engine.add(a)
        engine.advance(to: 0.5) { position, _, outcome in ends[position] = outcome.endS }
        #expect(ends.isEmpty && abs(engine.now - 0.5) < 1e-12)
        engine.add(b)
        engine.advance(to: .infinity) { position, cut, outcome in
            #expect(!cut)
            ends[position] = outcome.endS
        }
        // a alone for 0.5 s (50 tokens), then both at 1.5 steps until b's 50 are done (0.75 s): a's last token with it.
        #expect(abs(ends[1]! - 1.25) < 1e-9 && abs(ends[0]! - 1.25) < 1e-9)
        // A cut time stops a run there, marked cut.
        var cutting = EngineTimeline.Engine(concurrency: curve)
        cutting.add(a, cutAt: 0.3)
        var cutEnd: (Bool, Double)?
        cutting.advance(to: .infinity) { _, cut, outcome in cutEnd = (cut, outcome.endS) }
        #expect(cutEnd?.0 == true && abs((cutEnd?.1 ?? 0) - 0.3) < 1e-9)
        // Three sequences hold 3 of 4 slots; a run of 2 waits, and gets them once the holder is taken off.
        var full = EngineTimeline.Engine(concurrency: curve)
        let holder = full.add(
            EngineTimeline.Run(id: "h", sequences: 3, prefillS: 0, tokens: 1000, stepS: 0.01, started: false)
        )
        full.add(EngineTimeline.Run(id: "w", sequences: 2, prefillS: 0, tokens: 10, stepS: 0.01, started: false))
        full.advance(to: 1) { _, _, _ in }
        #expect(full.sequences == 3)
        let removed = full.remove(position: holder)
        #expect(removed.map { abs($0.endS - 1) < 1e-9 } == true && full.sequences == 2)
        var waited: EngineTimeline.Outcome?
        full.advance(to: .infinity) { _, _, outcome in waited = outcome }
        #expect(abs((waited?.startS ?? 0) - 1) < 1e-9 && abs((waited?.endS ?? 0) - (1 + 10 * 0.01 * 1.5)) < 1e-9)
    }

    /// The shortcut that rules a point out beside a busy engine without playing the timeline never rules out a point
    /// the full play keeps: over random loads, predicting with and without it gives the same answers, and the earliest
    /// end it computes is never after the end the play gives.
    @Test func theEarliestEndRulesOutOnlyWhatThePlayRulesOut() throws {
        let policy = try PolicyDecoder.decode(
            "kind: policy\ntasks:\n  mmlu-redux:\n    allowed_models: [DSR1-Qwen-1.5B]\n",
            file: "test.yaml"
        )
        let planner = try Planner(profile: Fixtures.profile, policy: policy)
        let limits = try planner.limits(PlanRequest(task: "mmlu-redux", deadlineS: 20, inputTokens: 256))
        let front = try planner.front(task: "mmlu-redux", inputTokens: 256, ranking: limits.objective.ranking)
        var random = SplitMix64(seed: 5)
        var ruledOut = 0
        for round in 0..<40 {
            let load = EngineLoad(
                runs: (0..<(1 + round % 12)).map { index in
                    .init(
                        requestID: "r\(index)",
                        taskClass: "mmlu-redux",
                        model: "DSR1-Qwen-1.5B",
                        priority: 0,
                        sequences: 1 + Int(random.next() % 8),
                        prefillLeftS: random.uniform() < 0.3 ? random.uniform() : 0,
                        tokensLeft: 50 + 2000 * random.uniform(),
                        stepS: 0.01 + 0.03 * random.uniform(),
                        decodePowerW: 15,
                        deadlineLeftS: 10_000,
                        predictedEndS: 60
                    )
                }
            )
            for point in front.points.prefix(30) {
                let variant = try #require(planner.profile.variants[point.configuration.variant])
                let engine = EngineTimeline(concurrency: variant.engineCurve)
                let profile = engine.decodingProfile(load.runs.map(\.timelineRun))
                let limit = 1 + 19 * random.uniform()
                let quick = planner.predictBusy(
                    point,
                    limits: limits,
                    load: load,
                    priority: 0,
                    latencyLimitS: limit,
                    besideProfile: profile
                )
                let full = planner.predictBusy(point, limits: limits, load: load, priority: 0, latencyLimitS: limit)
                #expect(quick == full)
                let newcomer = variant.timelineRun(
                    id: "new",
                    parallel: point.configuration.parallel,
                    input: 256,
                    tokens: point.percentileOutputTokens
                )
                let outcomes = engine.playInOrder(load.runs.map(\.timelineRun) + [newcomer])
                let played = try #require(outcomes[load.runs.count])
                if engine.boundsHold(sequences: load.sequences + point.configuration.parallel) {
                    let earliest = engine.earliestEndS(newcomer, besideProfile: profile)
                    #expect(earliest <= played.endS + 1e-9)
                    if earliest > limit { ruledOut += 1 }
                }
            }
        }
        // The shortcut did rule points out (else this test shows nothing).
        #expect(ruledOut > 50)
    }

    /// The ledger's bookkeeping as values: a plan's entry, what is left of it as time passes, and what ran beside it.
    @Test func admittedRunsGiveTheLoadAndWhatRanBeside() throws {
        let policy = try PolicyDecoder.decode(
            "kind: policy\ntasks:\n  mmlu-redux:\n    allowed_models: [DSR1-Qwen-1.5B]\n",
            file: "test.yaml"
        )
        let planner = try Planner(profile: Fixtures.profile, policy: policy)
        guard
            case let .plan(plan) = try planner.plan(
                PlanRequest(task: "mmlu-redux", deadlineS: 30, inputTokens: 256, requestID: "one")
            )
        else {
            Issue.record("expected a plan")
            return
        }
        let variant = try #require(planner.profile.variants[plan.configuration.variant])
        var runs = AdmittedRuns()
        runs.admit(LedgerEntry(plan: plan, variant: variant, priority: 0, at: 100), load: nil, at: 100)
        let entry = try #require(runs.entries.first)
        let halfway = (entry.decodeStartAt + entry.endAt) / 2
        let atHalfway = runs.load(at: halfway)
        let left = try #require(atHalfway.runs.first)
        #expect(abs(left.tokensLeft - entry.tokens / 2) < 1e-6 && left.prefillLeftS == 0)
        #expect(abs(left.deadlineLeftS - (130 - halfway)) < 1e-9)
        // Past its predicted end with no report, a quarter is taken to be left.
        let late = runs.load(at: entry.endAt + 0.01)
        let overdue = try #require(late.runs.first)
        #expect(abs(overdue.tokensLeft - entry.tokens * LedgerEntry.overdueShare) < 1e-6)
        let finished = runs.finish("one", at: entry.endAt + 0.01)
        let beside = try #require(finished)
        #expect(beside.meanSequences >= Double(plan.configuration.parallel) && beside.runsAdmittedWith == 0)
        #expect(runs.entries.isEmpty && runs.finish("one", at: entry.endAt + 1) == nil)
    }
}

/// What `profile collect` designs for decode by sequences, and how `calibrate` fits it.
struct ConcurrencyCollectionTests {
    @Test func theDesignNeverAsksForMoreSequencesThanTheEngineRuns() throws {
        let design = try SweepDesign.standard(
            contextTokens: 1024,
            decodeInputs: [64],
            decodeTokens: 256,
            parallelFactors: [1, 2, 4, 8, 16, 32],
            slots: 4,
            concurrency: [2, 4, 8, 32],
            concurrencyTokens: 96,
            concurrencyInputs: [64, 512, 1000]
        )
        #expect(design.points.allSatisfy { $0.parallel <= 4 })
        let concurrent = design.points.filter { $0.phase == .concurrent }
        // One sequence alone is measured too, at each input length that fits its tokens in the context.
        #expect(Set(concurrent.map(\.parallel)) == [1, 2, 4])
        #expect(Set(concurrent.map(\.inputTokens)) == [64, 512])
        #expect(design.points.filter { $0.phase == .interference }.count == 1)
        #expect(Set(design.points.filter { $0.phase == .parallel }.map(\.parallel)) == [1, 2, 4])
    }

    @Test func theFitTakesTheSlowerInputAndHoldsEachOutAgainstTheOthers() throws {
        let steps: [ConcurrencyFitter.Step] = [
            .init(sequences: 1, inputTokens: 64, stepS: 0.010, powerW: 10),
            .init(sequences: 2, inputTokens: 64, stepS: 0.012, powerW: 12),
            .init(sequences: 1, inputTokens: 512, stepS: 0.020, powerW: nil),
            .init(sequences: 2, inputTokens: 512, stepS: 0.030, powerW: nil),
        ]
        let fit = try #require(
            ConcurrencyFitter.fit(
                steps: steps,
                overheadsS: [0.01, 0.03, 0.02],
                interference: [0.5],
                slots: 4,
                source: "t"
            )
        )
        #expect(abs(fit.curve.stepFactor(2).factor - 1.5) < 1e-9)
        #expect(fit.curve.requestOverheadS == 0.02 && fit.curve.prefillInterference == 0.5 && fit.curve.slots == 4)
        #expect(abs((fit.curve.powerFactors[2] ?? 0) - 1.2) < 1e-9)
        // 1.2 predicted from 1.5 and the reverse: 25 % and 20 %.
        #expect(abs((fit.curve.fitMAPEPct ?? 0) - 22.5) < 1e-9)
        #expect(ConcurrencyFitter.fit(steps: [], overheadsS: [], interference: [], slots: nil, source: "t") == nil)
    }

    @Test func aProfileKeepsItsCurveThroughTheEncoderAndTheDecoder() throws {
        var variant = try Fixtures.profile.variant(model: "DSR1-Qwen-1.5B", quantization: .fp16)
        variant.concurrency = DecodeConcurrency(
            stepFactors: [2: 1.25, 4: 1.75],
            slots: 4,
            requestOverheadS: 0.012,
            prefillInterference: 0.3,
            powerFactors: [2: 1.1],
            source: "measured",
            fitMAPEPct: 3.5
        )
        let text = ProfileEncoder.variant(variant)
        let decoded = try ProfileDecoder.decodeVariant(.init(path: "models/x.yaml", text: text))
        #expect(decoded.concurrency == variant.concurrency)
        // k samples on an idle engine are the curve's case of b = k, and the fixed cost is paid once.
        let predictor = Predictor(device: Fixtures.profile.device)
        let one = predictor.latencyS(variant, input: 128, output: 512, parallel: 1)
        let four = predictor.latencyS(variant, input: 128, output: 512, parallel: 4)
        let decode = variant.decodeLatency.seconds(input: 128, output: 512)
        #expect(abs((four - one) - decode * 0.75) < 1e-9)
    }
}

/// Held-out requests measured on an engine, predicted by a profile: the file, its errors, and the prediction beside
/// running sequences.
struct HeldOutTableTests {
    @Test func aFileOfMeasuredRequestsIsPredictedRowByRow() throws {
        let text = """
            {"model": "DSR1-Qwen-1.5B", "input": 128, "output": 256, "parallel": 1, "latency_s": 9.0}
            {"model": "DSR1-Qwen-1.5B", "input": 128, "output": 256, "parallel": 1, "beside": 8, "latency_s": 9.0}

            {"model": "DSR1-Qwen-1.5B", "input": 128, "output": 256, "parallel": 4, "latency_s": 9.0, "engine": "x"}
            """
        let table = try HeldOutTable.parse(text, file: "held-out.jsonl")
        #expect(table.rows.count == 3 && table.rows[1].beside == 8 && table.rows[0].beside == 0)
        let scored = try table.scored(on: Fixtures.profile)
        let variant = try Fixtures.profile.variant(model: "DSR1-Qwen-1.5B", quantization: .fp16)
        let idle = Predictor(device: Fixtures.profile.device).latencyS(variant, input: 128, output: 256, parallel: 1)
        #expect(abs(scored[0].predictedS - idle) < 1e-9)
        // Beside 8 running sequences every token goes at the step of 9: slower than alone, as slow as k = 9 at most.
        let nine = Predictor(device: Fixtures.profile.device).latencyS(variant, input: 128, output: 256, parallel: 9)
        #expect(scored[1].predictedS > idle && scored[1].predictedS <= nine + 1e-9)
        #expect(abs(scored[0].errorPct - (idle - 9) / 9 * 100) < 1e-9)
        let mape = try #require(HeldOutTable.mape(scored))
        #expect(abs(mape - scored.map { abs($0.errorPct) }.reduce(0, +) / 3) < 1e-9)
    }

    /// A request's k samples in one request step as they measured alone (llama-server's `n = 2` took 2.4 times one
    /// sample on an H100, where two separate requests took 1.5 times): alone it takes the measured factor, beside
    /// another run the curve's growth from its k to all the sequences decoding, and one sample is the curve's.
    @Test func aRequestsOwnSamplesStepAsTheyMeasuredAloneAndGrowOnTheCurveBesideOthers() throws {
        var variant = try Fixtures.profile.variant(model: "DSR1-Qwen-1.5B", quantization: .fp16)
        variant.concurrency = DecodeConcurrency(stepFactors: [2: 1.5, 3: 2.0, 4: 2.5], source: "test")
        variant.parallel.measuredLatencyFactors = [2: 2.4]
        let predictor = Predictor(device: Fixtures.profile.device)
        let one = predictor.decodeSeconds(variant, input: 128, output: 256, parallel: 1)
        #expect(abs(variant.decodeFactor(2) - 2.4) < 1e-12)
        #expect(abs(predictor.decodeSeconds(variant, input: 128, output: 256, parallel: 2) - 2.4 * one) < 1e-9)
        #expect(abs(variant.ownStepFactor(2, curve: variant.engineCurve) - 1.6) < 1e-12)
        #expect(variant.ownStepFactor(1, curve: variant.engineCurve) == 1)
        // Alone on the timeline: the measured factor.
        let engine = EngineTimeline(concurrency: variant.engineCurve)
        let alone = variant.timelineRun(id: "k2", parallel: 2, input: 128, tokens: 256)
        let played = try #require(engine.play([alone])["k2"])
        #expect(abs(played.endS - (variant.startSeconds(input: 128) + 2.4 * one)) < 1e-6)
        // Beside one sequence decoding all along: 3 sequences, the curve's 2.0 over its 1.5 at 2, times 2.4.
        let beside = predictor.latencyS(
            variant,
            curve: variant.engineCurve,
            input: 128,
            output: 256,
            parallel: 2,
            beside: 1
        )
        #expect(abs(beside - (variant.startSeconds(input: 128) + 2.4 * 2.0 / 1.5 * one)) < 1e-6)
        // Past the largest k measured in one request, the curve's growth from it: 2.4 times 2.5 over 1.5 at k = 4.
        #expect(abs(variant.decodeFactor(4) - 2.4 * 2.5 / 1.5) < 1e-12)
        // Without measured factors the curve is the request's own: nothing changes.
        variant.parallel.measuredLatencyFactors = [:]
        #expect(variant.decodeFactor(2) == 1.5 && variant.ownStepFactor(2, curve: variant.engineCurve) == 1)
    }

    @Test func badRowsNameTheirLineAndField() {
        func problem(_ text: String) -> String {
            do {
                _ = try HeldOutTable.parse(text, file: "h.jsonl")
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(
            problem("{\"model\": \"m\", \"input\": 1, \"output\": 1, \"parallel\": 1}")
                == "h.jsonl:1: latency_s: must be seconds within (0, 86400)"
        )
        #expect(
            problem("\n{\"model\": \"m\", \"input\": 1, \"output\": 1, \"parallel\": 0, \"latency_s\": 1}").hasPrefix(
                "h.jsonl:2: parallel: must be a whole number within 1...256"
            )
        )
        #expect(problem("{\"input\": 1}") == "h.jsonl:1: model: missing")
        #expect(problem("not json").hasPrefix("h.jsonl:1: not JSON"))
        #expect(problem("\n\n") == "h.jsonl: no held-out requests")
    }
}
