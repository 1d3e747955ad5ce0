import Foundation
import Testing

@testable import EdgePlanCore

struct PlannerTests {
    let planner = Fixtures.planner

    func plan(
        _ task: String = "mmlu-redux",
        deadline: Double,
        energy: Double? = nil,
        input: Int = 256,
        minAccuracy: Double? = nil
    ) throws -> PlanOutcome {
        try planner.plan(
            PlanRequest(
                task: task,
                deadlineS: deadline,
                energyBudgetJ: energy,
                inputTokens: input,
                minAccuracy: minAccuracy
            )
        )
    }

    /// The policy's endpoints: each plan names where its model's engine listens, the quantization's own entry before
    /// the model's and the model's before `default`; a bad URL or a model the profile lacks is refused by name.
    @Test func plansNameTheEndpointThePolicyMapsTheirModelTo() throws {
        func policy(_ endpoints: String) throws -> Policy {
            try PolicyDecoder.decode(
                "kind: policy\nglobal:\n  endpoints:\n\(endpoints)tasks:\n  mmlu-redux:\n    allowed_models: [DSR1-Qwen-1.5B]\n",
                file: "p.yaml"
            )
        }
        func planned(_ endpoints: String) throws -> Plan? {
            let planner = try Planner(profile: Fixtures.profile, policy: try policy(endpoints))
            guard case let .plan(plan) = try planner.plan(PlanRequest(task: "mmlu-redux", deadlineS: 60)) else {
                Issue.record("expected a plan")
                return nil
            }
            #expect(plan.configuration.variant.model == "DSR1-Qwen-1.5B")
            return plan
        }
        func endpoint(_ endpoints: String) throws -> String? { try planned(endpoints)?.engineRequest.endpoint }
        // The quantization the plan runs (the endpoints do not change the choice).
        let quantization = try #require(try planned("    default: http://a:1\n")).configuration.variant.quantization
            .rawValue
        #expect(try endpoint("    default: http://a:1\n") == "http://a:1")
        #expect(try endpoint("    default: http://a:1\n    DSR1-Qwen-1.5B: unix:/run/q.sock\n") == "unix:/run/q.sock")
        #expect(
            try endpoint(
                "    DSR1-Qwen-1.5B: http://b:2\n    DSR1-Qwen-1.5B/\(quantization): http://c:3\n"
            ) == "http://c:3"
        )
        #expect(try endpoint("    DSR1-Llama-8B: http://d:4\n") == nil)
        #expect(throws: EdgePlanError.self) { try policy("    default: 127.0.0.1:8080\n") }
        do {
            _ = try policy("    default: 127.0.0.1:8080\n")
        } catch let error as EdgePlanError {
            #expect(error.field == "global.endpoints.default" && error.message.contains("http://HOST:PORT"))
        }
        do {
            _ = try Planner(profile: Fixtures.profile, policy: try policy("    Missing-7B: http://e:5\n"))
            Issue.record("an endpoint for an unknown model was accepted")
        } catch let error as EdgePlanError {
            #expect(error.field == "global.endpoints.Missing-7B" && error.code == .unknownModel)
        }
    }

    @Test func looserDeadlineOrLargerBudgetNeverLowersAccuracy() throws {
        for task in ["mmlu-redux", "mmlu", "natural-plan-trip"] {
            var previous = -1.0
            for deadline in [0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 600] {
                if case let .plan(plan) = try plan(task, deadline: deadline) {
                    #expect(plan.accuracy >= previous, "\(task) at \(deadline) s")
                    previous = plan.accuracy
                }
            }
            previous = -1
            for energy in [10.0, 30, 100, 300, 1000, 3000, 10_000] {
                if case let .plan(plan) = try plan(task, deadline: 300, energy: energy) {
                    #expect(plan.accuracy >= previous, "\(task) at \(energy) J")
                    previous = plan.accuracy
                }
            }
        }
    }

    @Test func frontPointsAreMutuallyNonDominated() throws {
        for task in Fixtures.profile.tasks {
            let front = try planner.front(task: task, inputTokens: 512)
            #expect(!front.points.isEmpty)
            for a in front.points {
                for b in front.points where a.configuration != b.configuration {
                    #expect(!ParetoFront.dominates(a, b), "\(a.configuration) dominates \(b.configuration)")
                }
            }
        }
    }

    /// The front is exactly the points nothing else dominates: checked against the definition, pair by pair, on
    /// random figures with many ties.
    @Test func frontIsExactlyTheNonDominatedPoints() throws {
        let template = try planner.front(task: "mmlu-redux", inputTokens: 512).points[0]
        var random = SeededRandom(state: 5)
        for _ in 0..<200 {
            let points = (0..<Int(random.next() * 60 + 1)).map { _ in
                var point = template
                point.estimate.accuracy = (random.next() * 5).rounded() / 5
                point.latencyPercentileS = (random.next() * 6).rounded()
                point.energyPercentileJ = (random.next() * 6).rounded()
                return point
            }
            let front = ParetoFront.nonDominated(points, ranking: .expected)
            let key = { (p: EvaluatedConfiguration) in [p.accuracy, p.latencyPercentileS, p.energyPercentileJ] }
            let expected = Set(points.filter { p in !points.contains { ParetoFront.dominates($0, p) } }.map(key))
            #expect(Set(front.map(key)) == expected)
            #expect(front.count == expected.count, "each distinct point once")
        }
    }

    /// A cold front judges candidates on their percentile figures first and evaluates only the survivors in full:
    /// it must equal the non-dominated set of every candidate evaluated in full, with learned lengths and
    /// accuracies in the overlay, at either latency basis and either ranking.
    @Test func twoPassFrontEqualsTheFrontOfEveryCandidateEvaluatedInFull() throws {
        var meanPolicy = Fixtures.policy
        meanPolicy.latencyBasis = .mean
        var random = SeededRandom(state: 11)
        for policy in [Fixtures.policy, meanPolicy] {
            let base = try Planner(profile: Fixtures.profile, policy: policy)
            var overlay = LearnedOverlay()
            for task in base.taskClasses {
                for candidate in base.space(task)!.candidates where random.next() < 0.3 {
                    let key = LearnedOverlay.Key(taskClass: task, configuration: candidate.configuration)
                    let length = candidate.outputLength
                    overlay.lengths[key] = OutputLengthModel(
                        mu: length.mu + random.next() - 0.5,
                        sigma: length.sigma * (0.5 + random.next()),
                        capTokens: length.capTokens,
                        source: .learned
                    )
                    var estimate = candidate.accuracy
                    estimate.accuracy = min(1, max(0, estimate.accuracy + random.next() * 0.2 - 0.1))
                    estimate.source = .learned
                    overlay.accuracy[key] = estimate
                }
            }
            overlay.revision = 1
            for planner in [base, base.applying(overlay)] {
                for task in planner.taskClasses {
                    for input in [100, 512, 3000, 30000] {
                        for ranking in [AccuracyRanking.expected, .lowerBound] {
                            let usable = Fixtures.profile.device.usableMemoryGiB
                            let everything = planner.space(task)!.candidates
                                .filter { planner.policy.task(task).allows($0.configuration) }
                                .map { planner.evaluate($0, task: task, inputTokens: input) }
                                .filter { point in
                                    let variant = Fixtures.profile.variants[point.configuration.variant]!
                                    return point.mean.fits
                                        && planner.predictor.memoryGiB(
                                            variant,
                                            input: input,
                                            output: point.percentileOutputTokens,
                                            parallel: point.configuration.parallel
                                        ) <= usable
                                }
                            let expected = ParetoFront(
                                task: task,
                                inputTokens: input,
                                evaluated: everything,
                                ranking: ranking
                            ).points
                            let front = try planner.buildFront(task: task, inputTokens: input, ranking: ranking).points
                            let context =
                                "\(task) at \(input) tokens, \(ranking), \(policy.latencyBasis), overlay \(!planner.overlay.isEmpty)"
                            #expect(
                                front.map(\.configuration.description) == expected.map(\.configuration.description),
                                "\(context)"
                            )
                            let identical = front == expected
                            #expect(identical, "every figure of every point: \(context)")
                        }
                    }
                }
            }
        }
    }

    /// A recalibration that changes only latency and power keeps the spaces and rebuilds what fronts read of
    /// them: its fronts equal those of a planner built from scratch on the new profile.
    @Test func recalibratedPlannerBuildsTheSameFrontsAsAFreshOne() throws {
        var profile = Fixtures.profile
        for (id, variant) in profile.variants {
            var slower = variant
            slower.decodeLatency.nSPerToken *= 1.3
            slower.prefillLatency.cS *= 2
            profile.variants[id] = slower
        }
        let planner = try Planner(profile: Fixtures.profile, policy: Fixtures.policy)
        for task in planner.taskClasses { _ = planner.space(task) }  // built, so that the recalibration keeps them
        let kept = try planner.recalibrated(to: profile)
        let fresh = try Planner(profile: profile, policy: Fixtures.policy)
        for task in fresh.taskClasses {
            for input in [100, 2000] {
                let a = try kept.buildFront(task: task, inputTokens: input).points
                let b = try fresh.buildFront(task: task, inputTokens: input).points
                let identical = a == b
                #expect(identical, "\(task) at \(input) tokens")
                #expect(
                    a.map(\.latencyPercentileS)
                        != (try planner.buildFront(task: task, inputTokens: input)).points.map(\.latencyPercentileS)
                )
            }
        }
    }

    @Test func chosenPlanIsFeasibleOnTheFrontAndMatchesPredict() throws {
        let predictor = Predictor(device: Fixtures.profile.device)
        for deadline in [1.0, 3, 10, 30, 120] {
            for input in [100, 256, 700, 2000] {
                guard case let .plan(plan) = try plan(deadline: deadline, energy: 2000, input: input) else { continue }
                #expect(plan.latencyPercentileS <= deadline)
                #expect(plan.energyJ <= 2000)
                let front = try planner.front(task: "mmlu-redux", inputTokens: input)
                #expect(front.points.contains { $0.configuration == plan.configuration })
                let variant = Fixtures.profile.variants[plan.configuration.variant]!
                let direct = predictor.predict(
                    variant,
                    input: input,
                    output: plan.meanOutputTokens,
                    parallel: plan.configuration.parallel
                )
                #expect(abs(direct.latencyS - plan.latencyS) < 1e-9)
                #expect(abs(direct.energyJ - plan.energyJ) < 1e-9)
            }
        }
    }

    @Test func hardCapIsAGuaranteeAndSoftModesCarryMissRisk() throws {
        // 7 s: the shortest deadline on four-option MMLU-Redux whose best plan clears chance plus the margin.
        guard case let .plan(fast) = try plan(deadline: 7) else {
            Issue.record("7 s should be feasible")
            return
        }
        #expect(fast.configuration.capped)
        let variant = Fixtures.profile.variants[fast.configuration.variant]!
        let atCap = Predictor(device: Fixtures.profile.device).predict(
            variant,
            input: 256,
            output: Double(fast.configuration.budgetTokens!),
            parallel: fast.configuration.parallel
        )
        if atCap.latencyS <= 7 {
            #expect(fast.missProbability == 0)
        } else {
            #expect(fast.missProbability <= 1 - Fixtures.policy.latencyPercentile + 1e-9)
        }
        guard case let .plan(roomy) = try plan(deadline: 8) else {
            Issue.record("8 s should be feasible")
            return
        }
        if roomy.configuration.capped, let cap = roomy.configuration.budgetTokens,
            Predictor(device: Fixtures.profile.device).predict(
                Fixtures.profile.variants[roomy.configuration.variant]!,
                input: 256,
                output: Double(cap),
                parallel: roomy.configuration.parallel
            ).latencyS <= 8
        {
            #expect(roomy.missProbability == 0)
        }
        #expect(fast.engineRequest.maxTokens == fast.configuration.budgetTokens)
        guard case let .plan(slow) = try plan(deadline: 400) else {
            Issue.record("400 s should be feasible")
            return
        }
        #expect(slow.configuration.variant.model == "DSR1-Qwen-14B")
        #expect(slow.missProbability >= 0 && slow.missProbability <= 1 - Fixtures.policy.latencyPercentile + 1e-6)
    }

    @Test func paperRegimesAppear() throws {
        // Section V-A: sub-second needs small models; beyond 30 s DSR1-Qwen-14B wins.
        if case let .plan(plan) = try plan(deadline: 2) {
            #expect(Fixtures.profile.variants[plan.configuration.variant]!.parametersBillion < 2)
        }
        if case let .plan(plan) = try plan(deadline: 60) {
            #expect(plan.configuration.variant.model == "DSR1-Qwen-14B")
        }
    }

    @Test func infeasibleSaysWhichLimitAndByHowMuch() throws {
        guard case let .infeasible(reason) = try plan(deadline: 0.05) else {
            Issue.record("expected infeasible")
            return
        }
        #expect(reason.limit == .deadline)
        #expect((reason.missBy ?? 0) > 0)
        #expect(reason.closest != nil)
        guard case let .infeasible(energy) = try plan(deadline: 100, energy: 0.5) else {
            Issue.record("expected infeasible")
            return
        }
        #expect(energy.limit == .energyBudget)
        guard case let .infeasible(accuracy) = try plan(deadline: 10, minAccuracy: 0.95) else {
            Issue.record("expected infeasible")
            return
        }
        #expect(accuracy.limit == .minAccuracy)
    }

    @Test func plansFitTheEnginesContextPerSequenceOrAreInfeasibleNamingIt() throws {
        // A 1,024-token slot: the prompt and the engine's max_tokens both fit in it, whatever the deadline allows.
        for input in [64, 300, 700, 1000] {
            let request = PlanRequest(task: "mmlu-redux", deadlineS: 600, inputTokens: input, contextTokens: 1024)
            switch try planner.plan(request) {
            case let .plan(plan):
                #expect(
                    input + plan.engineRequest.maxTokens <= 1024,
                    "input \(input): max_tokens \(plan.engineRequest.maxTokens)"
                )
            case let .infeasible(reason):
                #expect(reason.limit == .context || reason.limit == .minAccuracy, "input \(input): \(reason.message)")
            }
        }
        // Without the slot's context, the same request plans a budget past 1,024 tokens: the limit is what changed.
        guard case let .plan(wide) = try planner.plan(PlanRequest(task: "mmlu-redux", deadlineS: 600, inputTokens: 300))
        else {
            Issue.record("expected a plan")
            return
        }
        #expect(300 + wide.engineRequest.maxTokens > 1024)
        // A prompt that fills the slot is refused for the context, with the tokens it lacks.
        guard
            case let .infeasible(full) = try planner.plan(
                PlanRequest(task: "mmlu-redux", deadlineS: 120, inputTokens: 1500, contextTokens: 1024)
            )
        else {
            Issue.record("expected infeasible")
            return
        }
        #expect(full.limit == .context)
        #expect(full.missBy == 477 && full.requested == 1024)
        #expect(full.message.contains("1024-token context per sequence"))
        #expect(throws: EdgePlanError.self) {
            try planner.plan(PlanRequest(task: "mmlu-redux", deadlineS: 120, inputTokens: 100, contextTokens: 0))
        }
    }

    @Test func minEnergyObjectiveMeetsTheAccuracyFloorAtLowestEnergy() throws {
        let request = PlanRequest(
            task: "mmlu-redux",
            deadlineS: 600,
            inputTokens: 256,
            minAccuracy: 0.5,
            objective: .minEnergy
        )
        guard case let .plan(plan) = try planner.plan(request) else {
            Issue.record("expected a plan")
            return
        }
        #expect(plan.accuracy >= 0.5)
        let front = try planner.front(task: "mmlu-redux", inputTokens: 256)
        let cheapest = front.points.filter { $0.accuracy >= 0.5 && $0.latencyPercentileS <= 600 * 0.95 }.map(\.energyJ)
            .min()!
        #expect(abs(plan.energyJ - cheapest) / cheapest < 0.05)
    }

    @Test func badRequestsAreClearErrors() {
        for request in [
            PlanRequest(task: "mmlu-redux", deadlineS: 0), PlanRequest(task: "mmlu-redux", deadlineS: -1),
            PlanRequest(task: "mmlu-redux", deadlineS: .nan), PlanRequest(task: "mmlu-redux", deadlineS: .infinity),
            PlanRequest(task: "mmlu-redux", deadlineS: 1e12),
            PlanRequest(task: "mmlu-redux", deadlineS: 5, energyBudgetJ: -3),
            PlanRequest(task: "mmlu-redux", deadlineS: 5, inputTokens: 0),
            PlanRequest(task: "mmlu-redux", deadlineS: 5, inputTokens: 50_000_000),
            PlanRequest(task: "mmlu-redux", deadlineS: 5, minAccuracy: 1.5),
        ] {
            #expect(throws: EdgePlanError.self) { try planner.plan(request) }
        }
        #expect { try planner.plan(PlanRequest(task: "juggling", deadlineS: 5)) } throws: {
            ($0 as? EdgePlanError)?.code == .unknownTask
        }
    }

    @Test func policyThatExcludesEverythingIsRejected() throws {
        let policy = try PolicyDecoder.decode(
            """
            kind: policy
            tasks:
              mmlu-redux:
                allowed_models: [Gemma-7B-it]
                allowed_modes: [hard]
            """,
            file: "p.yaml"
        )
        #expect(throws: EdgePlanError.self) { try Planner(profile: Fixtures.profile, policy: policy) }
    }

    @Test func policyErrorsNameFileLineAndField() {
        #expect { try PolicyDecoder.decode("kind: policy\ndefaults:\n  max_paralel: 4\n", file: "p.yaml") } throws: {
            error in
            let error = error as? EdgePlanError
            return error?.file == "p.yaml" && error?.line == 3 && error?.field == "defaults.max_paralel"
        }
        #expect { try PolicyDecoder.decode("kind: policy\ndefaults:\n  deadline: soon\n", file: "p.yaml") } throws: {
            ($0 as? EdgePlanError)?.field == "defaults.deadline"
        }
        #expect {
            try PolicyDecoder.decode("kind: policy\ntasks:\n  mmlu:\n    allowed_modes: [fast]\n", file: "p.yaml")
        } throws: { ($0 as? EdgePlanError)?.field == "tasks.mmlu.allowed_modes" }
    }

    @Test func accuracyInterpolatesMonotonicallyAndExtendsOnlyAsModeled() throws {
        let table = try Fixtures.profile.table(task: "mmlu-redux")
        let model = AccuracyModel(table: table)
        let group = AccuracyModel.Group(
            variant: VariantID(model: "DSR1-Llama-8B", quantization: .fp16),
            mode: .hard,
            capped: true
        )
        let at128 = model.estimate(group, budget: 128)!
        let at192 = model.estimate(group, budget: 192)!
        let at256 = model.estimate(group, budget: 256)!
        #expect(at128.source == .measured && at192.source == .interpolated)
        #expect(at128.accuracy <= at192.accuracy && at192.accuracy <= at256.accuracy)
        #expect(at128.low < at128.accuracy && at128.accuracy < at128.high)
        #expect(model.estimate(group, budget: 64) == nil)
        // Without a release point (no length model) nothing beyond the data is offered.
        #expect(model.estimate(group, budget: 1024) == nil)
        // With one, the hard-cap curve rises toward the unconstrained run, marked modeled, with an interval spanning both.
        let extended = AccuracyModel(table: table) { _ in (budget: 3000, accuracy: 0.617) }
        let at1024 = try #require(extended.estimate(group, budget: 1024))
        #expect(at1024.source == .modeled)
        #expect(at1024.accuracy > at256.accuracy && at1024.accuracy < 0.617)
        #expect(at1024.low <= at256.accuracy && at1024.high >= 0.617)
        // L1-Max soft measured 17.8 at 128 and 17.1 at 256: the larger budget keeps the better figure.
        let l1 = AccuracyModel.Group(
            variant: VariantID(model: "L1-Max", quantization: .fp16),
            mode: .soft,
            capped: false
        )
        #expect(model.estimate(l1, budget: 256)!.accuracy >= model.estimate(l1, budget: 128)!.accuracy)
    }

    @Test func outputLengthPercentilesRespectTheCap() {
        let capped = OutputLengthModel(uncappedMeanTokens: 437, sigma: 1.83, capTokens: 128, source: .fitted)
        #expect(capped.quantile(0.999) == 128)
        #expect(capped.exceedanceProbability(128, samples: 8) == 0)
        #expect(capped.meanTokens < 128 && capped.capProbability > 0.3)
        let free = OutputLengthModel(uncappedMeanTokens: 800, sigma: 0.5, capTokens: nil, source: .prior)
        #expect(abs(free.meanTokens - 800) < 1e-6)
        #expect(free.quantile(0.95) > 800)
        #expect(free.quantileOfMaximum(0.95, samples: 8) > free.quantile(0.95))
        #expect(abs(free.cdf(free.quantile(0.9)) - 0.9) < 1e-6)
    }

    @Test func planJSONHasTheDocumentedShape() throws {
        guard case let .plan(plan) = try plan(deadline: 10) else {
            Issue.record("expected a plan")
            return
        }
        let json = try JSONValue.parse(Array(plan.json.serialized().utf8))
        for key in ["model", "quantization", "mode", "tokenBudget", "parallel", "predicted", "request"] {
            #expect(json[key] != nil, "\(key)")
        }
        for key in [
            "latencyMs", "latencyPercentileMs", "energyJ", "energyPercentileJ", "accuracy", "accuracyLow",
            "accuracyHigh", "costUsdPerMTok", "missProbability",
        ] { #expect(json["predicted"]?[key]?.doubleValue != nil, "\(key)") }
        #expect(json["request"]?["body"]?["model"]?.stringValue != nil)
    }

    @Test func jsonParserRejectsHostileInput() {
        for bad in [
            "", "{", "{\"a\":}", String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "\"\\ud800\"",
            "{\"a\":1}x", "nul",
        ] {
            #expect(throws: EdgePlanError.self) { try JSONValue.parse(Array(bad.utf8)) }
        }
        let parsed = try? JSONValue.parse(Array("{\"a\":[1,2.5,\"\\u00e9\\n\",true,null]}".utf8))
        #expect(parsed?["a"] != nil)
    }
}
