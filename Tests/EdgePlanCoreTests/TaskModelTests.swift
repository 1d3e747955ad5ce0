import Foundation
import Testing

@testable import EdgePlanCore

/// The honest task models: plurality voting, output-length fits, provenance and intervals, the accuracy floor.
struct TaskModelTests {
    @Test func twoSamplesBeatOneOnlyThroughAbstention() {
        for single in [0.1, 0.4, 0.8] {
            for concentration in [0.05, 1, 20] {
                let plain = PluralityVote.accuracy(
                    single: single,
                    samples: 2,
                    abstention: 0,
                    concentration: concentration,
                    options: 4
                )
                #expect(abs(plain - single) < 1e-9, "a split vote is a coin flip: k = 2 equals k = 1")
                let abstaining = PluralityVote.accuracy(
                    single: single,
                    samples: 2,
                    abstention: 0.3,
                    concentration: concentration,
                    options: 4
                )
                // With abstention a, one sample answers with probability 1 − a, two with 1 − a²: the most two can gain.
                #expect(abstaining > single && abstaining <= single * (1 + 0.3) + 1e-9)
            }
        }
    }

    @Test func voteMatchesASimulation() {
        // A direct Monte Carlo of the same process: Beta per question, abstain, uniform wrong options, random ties.
        var random = SplitMix(seed: 11)
        let (single, k, abstention, concentration, options) = (0.45, 8, 0.3, 2.0, 4)
        let c = single / (1 - abstention)
        var correct = 0
        let questions = 200_000
        for _ in 0..<questions {
            let p = random.beta(c * concentration, (1 - c) * concentration)
            var votes = [Int](repeating: 0, count: options)
            for _ in 0..<k {
                let u = random.uniform()
                if u < abstention { continue }
                if random.uniform() < p {
                    votes[0] += 1
                } else {
                    votes[1 + Int(random.uniform() * Double(options - 1))] += 1
                }
            }
            let top = votes.max()!
            guard top > 0 else { continue }
            let leaders = votes.indices.filter { votes[$0] == top }
            if leaders[Int(random.uniform() * Double(leaders.count))] == 0 { correct += 1 }
        }
        let simulated = Double(correct) / Double(questions)
        let exact = PluralityVote.accuracy(
            single: single,
            samples: k,
            abstention: abstention,
            concentration: concentration,
            options: options
        )
        #expect(abs(simulated - exact) < 0.005, "simulated \(simulated), exact \(exact)")
    }

    @Test func voteSaturatesWhereQuestionsAreKnownOrNot() {
        // Nearly bimodal questions (tiny concentration): more samples add nothing without abstention.
        let four = PluralityVote.accuracy(single: 0.6, samples: 4, abstention: 0, concentration: 0.01, options: 4)
        let sixtyFour = PluralityVote.accuracy(single: 0.6, samples: 64, abstention: 0, concentration: 0.01, options: 4)
        #expect(abs(sixtyFour - four) < 0.01)
        // Alike questions (large concentration) above chance: voting converges toward 1.
        #expect(PluralityVote.accuracy(single: 0.6, samples: 64, abstention: 0, concentration: 1000, options: 4) > 0.99)
    }

    @Test func voteFitStaysWithinThreePointsOfThePaper() throws {
        let targets = try VoteTargets.decode(BundledResources.voteTargets, file: "vote-targets.yaml")
        let results = try VoteFitter.fit(targets, profile: Fixtures.profile)
        #expect(results.count == 2)
        for result in results {
            for row in result.rows {
                #expect(
                    row.errorPoints <= 3,
                    "\(row.target.model) \(row.target.budgetTokens) \(row.target.samples)/\(row.target.relativeTo)"
                )
            }
        }
        // The bundled profile carries exactly this fit.
        let bundled = try Fixtures.profile.variant(model: "DSR1-Llama-8B", quantization: .fp16).voting
        let reasoning = try #require(results.first { $0.family == .reasoning })
        #expect(bundled.anchors.count == reasoning.anchors.count)
        for (a, b) in zip(bundled.anchors, reasoning.anchors) {
            #expect(
                abs(a.concentration - b.concentration) / b.concentration < 1e-8
                    && a.unansweredAtCap == b.unansweredAtCap && a.budgetTokens == b.budgetTokens
            )
        }
        #expect(abs(bundled.fitErrorPoints - reasoning.rmsePoints) < 1e-6)
    }

    @Test func softHardPairsGiveHeavyTails() throws {
        let fits = OutputLengthFits(profile: Fixtures.profile)
        let llama = try #require(
            fits.pairs.first {
                $0.task == "mmlu-redux" && $0.variant.model == "DSR1-Llama-8B" && $0.budgetTokens == 128
            }
        )
        // The fitted log-normal reproduces both published means.
        let model = OutputLengthModel(
            uncappedMeanTokens: llama.softMeanTokens,
            sigma: llama.sigma,
            capTokens: 128,
            source: .fitted
        )
        #expect(abs(model.meanTokens - 76.3) < 0.05)
        for pair in fits.pairs where pair.task == "mmlu-redux" {
            if pair.variant.model.hasPrefix("DSR1") {
                #expect(pair.coefficientOfVariation > 4 && pair.coefficientOfVariation < 9)
            }
            if pair.variant.model == "L1-Max" {
                #expect(pair.coefficientOfVariation > 1.5 && pair.coefficientOfVariation < 3)
            }
        }
        #expect(fits.familySigma[.reasoning] != nil && fits.familySigma[.direct] == nil)
    }

    @Test func nothingAboveTheBestMeasuredAccuracyWithoutModelOrInterval() throws {
        let planner = Fixtures.planner
        for task in planner.taskClasses {
            let table = try planner.table(taskClass: task)
            let model = AccuracyModel(table: table)
            for input in [256, 1024] {
                for point in try planner.front(task: task, inputTokens: input).points {
                    let best = try #require(model.bestMeasured(model: point.configuration.variant.model))
                    if point.accuracy > best + 1e-9 {
                        #expect(
                            [AccuracySource.modeled, .learned].contains(point.accuracySource),
                            "\(task) \(point.configuration)"
                        )
                        #expect(point.estimate.high > point.estimate.low)
                    }
                    #expect(point.estimate.low <= point.accuracy && point.accuracy <= point.estimate.high)
                }
            }
        }
    }

    @Test func belowTheFloorIsInfeasibleNotAPlan() throws {
        // Natural-Plan trip at 13 s: only configurations around 0 % accuracy could run.
        let outcome = try Fixtures.planner.plan(
            PlanRequest(task: "natural-plan-trip", deadlineS: 60, inputTokens: 1500)
        )
        // 20 options: chance is 5 %, so the floor is 7 %.
        let tripFloor = 1.0 / 20 + TaskPolicy.defaultChanceMargin
        if case let .plan(plan) = outcome { #expect(plan.accuracy >= tripFloor) }
        for deadline in [13.2, 30, 60, 120, 300] {
            if case let .plan(plan) = try Fixtures.planner.plan(
                PlanRequest(task: "natural-plan-trip", deadlineS: deadline, inputTokens: 1500)
            ) {
                #expect(plan.accuracy >= tripFloor, "\(deadline) s")
            }
        }
        // A request cannot lower the operator's floor: on four options, chance (25 %) plus the default margin.
        let low = try Fixtures.planner.limits(PlanRequest(task: "mmlu-redux", deadlineS: 10, minAccuracy: 0))
        #expect(abs(low.minAccuracy - (0.25 + TaskPolicy.defaultChanceMargin)) < 1e-12 && low.chance == 0.25)
    }

    @Test func energyIsCheckedAtTheLatencyPercentile() throws {
        guard
            case let .plan(plan) = try Fixtures.planner.plan(
                PlanRequest(task: "mmlu-redux", deadlineS: 60, inputTokens: 512)
            )
        else {
            Issue.record("60 s should be feasible")
            return
        }
        #expect(plan.energyPercentileJ >= plan.energyJ)
        let budget = (plan.energyJ + plan.energyPercentileJ) / 2
        if case let .plan(tight) = try Fixtures.planner.plan(
            PlanRequest(task: "mmlu-redux", deadlineS: 60, energyBudgetJ: budget, inputTokens: 512)
        ) {
            #expect(tight.energyPercentileJ <= budget)
            #expect(tight.configuration != plan.configuration)
        }
    }

    @Test func lowerBoundObjectivePrefersWhatIsKnown() throws {
        let policy = try PolicyDecoder.decode(
            "kind: policy\ntasks:\n  mmlu-redux:\n    objective: max-accuracy-lower-bound\n",
            file: "p.yaml"
        )
        let planner = try Planner(profile: Fixtures.profile, policy: policy)
        guard
            case let .plan(cautious) = try planner.plan(
                PlanRequest(task: "mmlu-redux", deadlineS: 300, inputTokens: 256)
            ),
            case let .plan(greedy) = try Fixtures.planner.plan(
                PlanRequest(task: "mmlu-redux", deadlineS: 300, inputTokens: 256)
            )
        else {
            Issue.record("300 s should be feasible")
            return
        }
        #expect(cautious.objective == .maxAccuracyLowerBound)
        #expect(cautious.estimate.low >= greedy.estimate.low - 1e-12)
    }

    @Test func taskClassesTakeTheirPriorAndDefaultsFromThePolicy() throws {
        let policy = try PolicyDecoder.decode(
            """
            kind: policy
            tasks:
              grasp-plan:
                like: mmlu-redux
                prior_weight: 20
                deadline: 8s
                input_tokens: 400
            """,
            file: "p.yaml"
        )
        let planner = try Planner(profile: Fixtures.profile, policy: policy)
        #expect(planner.taskClasses.contains("grasp-plan"))
        let limits = try planner.limits(PlanRequest(task: "grasp-plan"))
        #expect(limits.deadlineS == 8 && limits.inputTokens == 400)
        guard case let .plan(plan) = try planner.plan(PlanRequest(task: "grasp-plan")) else {
            Issue.record("expected a plan")
            return
        }
        #expect(plan.task == "grasp-plan" && plan.inputTokens == 400)
        #expect {
            try PolicyDecoder.decode("kind: policy\ntasks:\n  grasp:\n    like: juggling\n", file: "p.yaml").check(
                against: Fixtures.profile
            )
        } throws: {
            ($0 as? EdgePlanError)?.field == "tasks.grasp.like"
        }
        #expect {
            try PolicyDecoder.decode("kind: policy\ntasks:\n  grasp:\n    deadline: 8s\n", file: "p.yaml").check(
                against: Fixtures.profile
            )
        } throws: {
            ($0 as? EdgePlanError)?.code == .unknownTask
        }
    }
}

/// A small deterministic generator for simulations in tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Gamma by Marsaglia–Tsang (shape < 1 boosted), then Beta as a ratio of gammas.
    mutating func gamma(_ shape: Double) -> Double {
        if shape < 1 { return gamma(shape + 1) * pow(uniform(), 1 / shape) }
        let d = shape - 1.0 / 3
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0
            var v = 0.0
            repeat {
                x = (-2 * log(max(uniform(), 1e-300))).squareRoot() * cos(2 * .pi * uniform())
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            if log(max(uniform(), 1e-300)) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }
    mutating func beta(_ a: Double, _ b: Double) -> Double {
        let x = gamma(a)
        let y = gamma(b)
        return x / (x + y)
    }
}

struct AccuracyLeaveOneOutTests {
    @Test func heldOutCellsArePredictedWithinTheirIntervals() {
        let cells = AccuracyLeaveOneOut.run(profile: Fixtures.profile)
        let predicted = cells.filter { $0.predicted != nil }
        #expect(predicted.count >= 5)
        let errors = predicted.compactMap(\.errorPoints)
        #expect(errors.reduce(0, +) / Double(errors.count) < 5)
        #expect(predicted.filter { $0.covered == true }.count >= predicted.count * 8 / 10)
        // Unbudgeted rows and the smallest budget of a curve cannot be reached from the rest: not offered.
        #expect(cells.contains { $0.record.budgetTokens == nil && $0.predicted == nil })
    }
}

struct LearningTests {
    @Test func lengthPosteriorRecoversACensoredLogNormal() {
        // Truth: median 300 tokens, sigma 1.2, capped at 512 (about a third of the samples hit the cap).
        let truth = OutputLengthModel(mu: log(300), sigma: 1.2, capTokens: 512, source: .fitted)
        let prior = OutputLengthModel(mu: log(80), sigma: 1.9, capTokens: 512, source: .fitted)
        var posterior = LengthPosterior(prior: prior, priorWeight: 20)
        var random = SplitMix(seed: 3)
        for _ in 0..<500 {
            let z = (-2 * log(max(random.uniform(), 1e-300))).squareRoot() * cos(2 * .pi * random.uniform())
            posterior.observe(tokens: min(Int(exp(truth.mu + truth.sigma * z)), 512), capTokens: 512)
        }
        let learned = posterior.model
        #expect(learned.source == .learned)
        #expect(abs(learned.mu - truth.mu) < 0.15, "mu \(learned.mu) vs \(truth.mu)")
        #expect(abs(learned.sigma - truth.sigma) < 0.15, "sigma \(learned.sigma) vs \(truth.sigma)")
        #expect(abs(learned.capProbability - truth.capProbability) < 0.05)
    }

    @Test func accuracyPosteriorMovesTowardTheTruthAndBoundsEachPeer() throws {
        let planner = Fixtures.planner
        let space = try #require(planner.space("mmlu-redux"))
        let candidate = try #require(
            space.candidates.first {
                $0.configuration.variant.model == "DSR1-Qwen-14B" && $0.configuration.mode == .base
                    && $0.configuration.parallel == 1 && $0.configuration.variant.quantization == .fp16
            }
        )
        var learner = Learner(policy: LearningPolicy(maxEvidencePerPeer: 100))
        var random = SplitMix(seed: 5)
        let truth = candidate.single.accuracy - 0.3
        for _ in 0..<300 {
            let outcome = LearningOutcome(
                taskClass: "mmlu-redux",
                configuration: candidate.configuration,
                correct: random.uniform() < truth,
                sampleOutputTokens: [],
                peer: 1000
            )
            learner.learn(outcome, planner: planner)
        }
        let estimate = try #require(
            learner.overlay.accuracy[.init(taskClass: "mmlu-redux", configuration: candidate.configuration)]
        )
        #expect(estimate.source == .learned && estimate.observations == 100, "one peer counts at most 100 times")
        #expect(abs(estimate.accuracy - truth) < 0.08, "\(estimate.accuracy) vs \(truth)")
        #expect(learner.refused[.peerEvidenceCap] == 200)
        // The same outcomes learned with exploration-neighbour k = 4 move through the vote model too.
        let voted = try #require(
            space.candidates.first {
                $0.configuration
                    == Configuration(
                        variant: candidate.configuration.variant,
                        mode: .base,
                        budgetTokens: nil,
                        capped: false,
                        parallel: 4
                    )
            }
        )
        let votedEstimate = try #require(
            learner.overlay.accuracy[.init(taskClass: "mmlu-redux", configuration: voted.configuration)]
        )
        #expect(votedEstimate.accuracy < voted.accuracy.accuracy - 0.1)
    }
}

struct OverlayCacheTests {
    @Test func unchangedClassesKeepTheirFrontsAcrossALearnedUpdate() throws {
        let planner = try Planner(profile: Fixtures.profile, policy: Fixtures.policy)
        _ = try planner.front(task: "mmlu-redux", inputTokens: 256)
        let kept = try planner.front(task: "mmlu", inputTokens: 256)
        var learner = Learner()
        let candidate = try #require(planner.space("mmlu-redux")?.candidates.first { $0.configuration.parallel == 1 })
        learner.learn(
            LearningOutcome(
                taskClass: "mmlu-redux",
                configuration: candidate.configuration,
                correct: false,
                sampleOutputTokens: [],
                peer: 0
            ),
            planner: planner
        )
        let updated = planner.applying(learner.overlay, changed: ["mmlu-redux"])
        #expect(updated.cachedFronts == 1, "only mmlu's front carries over")
        #expect(
            try updated.front(task: "mmlu", inputTokens: 256).points.map(\.configuration)
                == kept.points.map(\.configuration)
        )
        #expect(planner.applying(learner.overlay).cachedFronts == 0)
    }
}

/// Caution applies at once, optimism from one peer slowly and not far (issue: fail-safe learning).
struct AsymmetricTrustTests {
    static func candidate(_ planner: Planner) throws -> ConfigurationSpace.Candidate {
        let space = try #require(planner.space("mmlu-redux"))
        return try #require(
            space.candidates.first {
                $0.configuration.variant.model == "DSR1-Qwen-14B" && $0.configuration.mode == .base
                    && $0.configuration.parallel == 1 && $0.configuration.variant.quantization == .fp16
            }
        )
    }

    /// `count` outcomes, all right, from `peers` (in turn), `spacing` seconds apart.
    static func successes(
        _ learner: inout Learner,
        _ planner: Planner,
        count: Int,
        peers: [UInt32],
        spacing: Double
    ) throws {
        let candidate = try candidate(planner)
        for index in 0..<count {
            learner.learn(
                LearningOutcome(
                    taskClass: "mmlu-redux",
                    configuration: candidate.configuration,
                    correct: true,
                    sampleOutputTokens: [max(1, Int(candidate.outputLength.meanTokens / 4))],
                    peer: peers[index % peers.count],
                    time: Double(index) * spacing
                ),
                planner: planner
            )
        }
    }

    @Test func aLoneOptimistMovesAccuracyAtTheBoundedRateAndLengthsNotAtAll() throws {
        let planner = Fixtures.planner
        let candidate = try Self.candidate(planner)
        let key = LearnedOverlay.Key(taskClass: "mmlu-redux", configuration: candidate.configuration)
        var learner = Learner()
        // 100 right answers, each a quarter of the prior's mean length, within one hour.
        try Self.successes(&learner, planner, count: 100, peers: [7], spacing: 36)
        let hour = try #require(learner.overlay.accuracy[key])
        let allowed = learner.policy.optimismPointsPerHour * 99 * 36 / 3600
        #expect(
            hour.accuracy <= candidate.accuracy.accuracy + allowed + 1e-9,
            "\(hour.accuracy) vs prior \(candidate.accuracy.accuracy)"
        )
        #expect(learner.overlay.lengths[key] == nil, "shorter outputs from one peer are not believed")
        #expect(learner.heldBack.contains("mmlu-redux: \(candidate.configuration) (accuracy)"))
        #expect(
            learner.heldBack.contains("mmlu-redux: \(candidate.configuration) (lengths)") && learner.heldBackCount > 0
        )
        // A day later the rise is still capped.
        try Self.successes(&learner, planner, count: 100, peers: [7], spacing: 900)
        let day = try #require(learner.overlay.accuracy[key])
        #expect(day.accuracy <= candidate.accuracy.accuracy + learner.policy.maxOptimismPoints + 1e-9)
    }

    @Test func cautionAppliesAtOnceAndASecondPeerCorroboratesOptimism() throws {
        let planner = Fixtures.planner
        let candidate = try Self.candidate(planner)
        let key = LearnedOverlay.Key(taskClass: "mmlu-redux", configuration: candidate.configuration)
        // One right answer in three from one peer, in one minute (not so few that the peer is ignored): the
        // estimate falls as far as the evidence says.
        var cautious = Learner()
        for index in 0..<60 {
            cautious.learn(
                LearningOutcome(
                    taskClass: "mmlu-redux",
                    configuration: candidate.configuration,
                    correct: index % 3 == 0,
                    sampleOutputTokens: [],
                    peer: 7,
                    time: Double(index)
                ),
                planner: planner
            )
        }
        let fallen = try #require(cautious.overlay.accuracy[key])
        #expect(fallen.accuracy < candidate.accuracy.accuracy - 0.2 && cautious.heldBack.isEmpty)
        // The same successes as the lone optimist, from two peers, in one minute: believed in full.
        var corroborated = Learner()
        try Self.successes(&corroborated, planner, count: 100, peers: [7, 8], spacing: 0.6)
        let risen = try #require(corroborated.overlay.accuracy[key])
        #expect(risen.accuracy > candidate.accuracy.accuracy + corroborated.policy.maxOptimismPoints)
        #expect(corroborated.overlay.lengths[key] != nil && corroborated.heldBack.isEmpty)
    }

    @Test func aLyingReporterCostsNoDeadlinesOnTheShippedDay() throws {
        // The home robot's day on the default truth without its mid-day slowdown: one peer reports every run half as
        // long in 40 % of the time, and always right. Its deadline hits stay within a point of the honest reporter's.
        var truth = try Truth.decode(BundledResources.defaultTruth, file: "truth-default.yaml")
        truth.drift = []
        let tasks = try SimulationTests.workload()
        func hits(_ reporter: Simulator.Reporter) throws -> Double {
            let policy = try PolicyDecoder.decode(
                try SimulationTests.text("workloads/home-robot-policy.yaml"),
                file: "home-robot-policy.yaml"
            )
            var simulator = try Simulator(
                profile: Fixtures.profile,
                truth: truth,
                policies: [
                    SimulatedPolicy(name: "learning", policy: policy, kind: .planner(recalibrate: true, learn: true))
                ],
                options: .init(reporter: reporter)
            )
            for task in tasks { try simulator.process(task) }
            try simulator.finish()
            return simulator.runs[0].overall.deadlineHitRate
        }
        let honest = try hits(.honest)
        let lying = try hits(.optimisticLiar)
        print("deadline hits on the shipped day without drift: honest reporter \(honest), optimistic liar \(lying)")
        #expect(abs(honest - lying) <= 0.01, "\(honest) vs \(lying)")
    }
}
