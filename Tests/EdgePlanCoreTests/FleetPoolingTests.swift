import Foundation
import Testing

@testable import EdgePlanCore

/// The fleet's pooling: robust calibration with robot effects and flags, accuracy evidence bounded per robot.
struct FleetPoolingTests {
    static func ratio(_ robot: String, _ value: Double, runs: Int = 10) -> FleetPooling.RobotRatio {
        FleetPooling.RobotRatio(
            robot: robot,
            deviceClass: "orin",
            model: "m",
            quantization: "fp16",
            medianRatio: value,
            runs: runs
        )
    }

    @Test func aRobotFifteenPercentSlowIsFlaggedAndLeftOut() throws {
        let all = [Self.ratio("a", 1.0), Self.ratio("b", 1.02), Self.ratio("c", 0.99), Self.ratio("slow", 1.15)]
        let pooled = try #require(FleetPooling.calibrations(all).first)
        #expect(pooled.flagged == ["slow"])
        #expect(pooled.pooledRobots == 3 && pooled.runs == 30)
        #expect(abs(pooled.ratio - 1.0) < 1e-9)
        #expect(abs(pooled.effects["slow"]! - 1.15) < 1e-9)
        // Without the slow robot the pooled ratio is the same: it moved the others by nothing.
        let honest = try #require(FleetPooling.calibrations(all.filter { $0.robot != "slow" }).first)
        #expect(honest.ratio == pooled.ratio)
    }

    @Test func eachPowerModeIsPooledOnItsOwn() throws {
        var slowMode = [Self.ratio("a", 1.6), Self.ratio("b", 1.62)]
        for index in slowMode.indices { slowMode[index].powerMode = "pmode:0002" }
        let pooled = FleetPooling.calibrations(
            [Self.ratio("a", 1.0), Self.ratio("b", 1.01), Self.ratio("c", 0.99)] + slowMode
        )
        #expect(pooled.map(\.powerMode) == ["", "pmode:0002"] && pooled.allSatisfy { $0.flagged.isEmpty })
        #expect(abs(pooled[1].ratio - 1.61) < 1e-9)
    }

    @Test func tooFewRunsDoNotCount() {
        #expect(FleetPooling.calibrations([Self.ratio("a", 1.0, runs: 4)]).isEmpty)
    }

    static func tally(_ robot: String, _ successes: Int, _ trials: Int) -> FleetPooling.Tally {
        FleetPooling.Tally(
            robot: robot,
            taskClass: "t",
            model: "m",
            quantization: "fp16",
            mode: "direct",
            successes: successes,
            trials: trials
        )
    }

    @Test func noRobotMovesAPooledAccuracyByMoreThanTheBound() throws {
        let honest = [Self.tally("a", 180, 300), Self.tally("b", 180, 300), Self.tally("c", 180, 300)]
        let optimist = try #require(FleetPooling.accuracy(honest + [Self.tally("liar", 4000, 4000)]).first)
        #expect(abs(optimist.accuracy - 0.65) < 1e-9 && optimist.bounded["liar"]! > 0.05)
        // Its volume is capped at 400 outcomes first, then cut to the weight that moves the figure by the bound.
        #expect(abs(optimist.trials - (900 + 0.05 * 900 / 0.35)) < 1e-6)
        #expect(optimist.bounded.keys.sorted() == ["liar"], "the honest robots are not bounded for the liar's pull")
        // The same whatever the liar's name: the most influential robot is bounded first, whatever the order.
        for name in ["0-liar", "b2", "zz-liar"] {
            let renamed = try #require(FleetPooling.accuracy(honest + [Self.tally(name, 0, 400)]).first)
            #expect(abs(renamed.accuracy - 0.55) < 1e-9 && renamed.bounded.keys.sorted() == [name], "\(name)")
        }
        // Two liars pulling the same way are each bounded: with the weights it settles on, no robot moves the figure
        // by more than the bound against the rest (which, for each liar, holds the other).
        let two = try #require(
            FleetPooling.accuracy(honest + [Self.tally("liar1", 400, 400), Self.tally("liar2", 400, 400)]).first
        )
        #expect(Set(two.bounded.keys) == ["liar1", "liar2"], "\(two)")
        let values = [0.6, 0.6, 0.6, 1, 1]
        let (weights, _) = FleetPooling.bounded(weights: [300, 300, 300, 400, 400], values: values, bound: 0.05)
        let total = weights.reduce(0, +)
        let mean = zip(weights, values).reduce(0) { $0 + $1.0 * $1.1 } / total
        #expect(abs(mean - two.accuracy) < 1e-9)
        for index in values.indices {
            let without = (mean * total - weights[index] * values[index]) / (total - weights[index])
            #expect(abs(mean - without) <= 0.05 + 1e-9, "robot \(index) moves it \(mean - without)")
        }
        let pessimist = try #require(FleetPooling.accuracy(honest + [Self.tally("liar", 0, 400)]).first)
        #expect(abs(pessimist.accuracy - 0.55) < 1e-9)
        let agreeing = try #require(FleetPooling.accuracy(honest + [Self.tally("d", 120, 200)]).first)
        #expect(agreeing.bounded.isEmpty && abs(agreeing.accuracy - 0.6) < 1e-9)
        // A flagged robot is left out altogether.
        let excluded = try #require(
            FleetPooling.accuracy(honest + [Self.tally("liar", 400, 400)], excluded: ["liar"]).first
        )
        #expect(excluded.robots == 3 && abs(excluded.accuracy - 0.6) < 1e-9)
    }

    /// A robot's lengths: a log-normal's quantiles at the pooling levels around `median` tokens.
    static func lengths(_ robot: String, median: Double, samples: Int) -> FleetPooling.LengthSummary {
        FleetPooling.LengthSummary(
            robot: robot,
            taskClass: "t",
            model: "m",
            quantization: "fp16",
            mode: "hard",
            budgetTokens: 512,
            samples: samples,
            quantiles: FleetPooling.lengthLevels.map { median * exp(0.5 * Normal.quantile($0)) }
        )
    }

    static func geometricMean(_ quantiles: [Int]) -> Double {
        exp(quantiles.reduce(0) { $0 + log(Double($1)) } / Double(quantiles.count))
    }

    @Test func noRobotMovesAPooledLengthByMoreThanTheBound() throws {
        let honest = [
            Self.lengths("a", median: 300, samples: 300), Self.lengths("b", median: 300, samples: 500),
            Self.lengths("c", median: 300, samples: 200),
        ]
        let agreeing = try #require(FleetPooling.lengths(honest).first)
        // Robots that agree pool to their own distribution, each counted up to the cap.
        #expect(agreeing.quantiles == honest[0].quantiles.map { Int($0.rounded()) })
        #expect(agreeing.samples == 900 && agreeing.robots == 3 && agreeing.bounded.isEmpty)
        #expect(abs(agreeing.medianTokens - 300) <= 1)
        // A robot reporting a tenth of the lengths, ten thousand times, moves the centre by the bound and no more.
        let short = try #require(
            FleetPooling.lengths(honest + [Self.lengths("liar", median: 30, samples: 10_000)]).first
        )
        let moved = Self.geometricMean(short.quantiles) / Self.geometricMean(agreeing.quantiles) - 1
        #expect(abs(moved + 0.10) < 0.01, "moved \(moved)")
        #expect(short.bounded["liar"]! < -0.10)
        // And one reporting ten times the lengths, the other way.
        let long = try #require(FleetPooling.lengths(honest + [Self.lengths("liar", median: 3000, samples: 400)]).first)
        let grew = Self.geometricMean(long.quantiles) / Self.geometricMean(agreeing.quantiles) - 1
        #expect(abs(grew - 0.10) < 0.01, "grew \(grew)")
        // A flagged robot is left out, and malformed summaries are skipped.
        var malformed = Self.lengths("bad", median: 300, samples: 50)
        malformed.quantiles.removeLast()
        let excluded = try #require(
            FleetPooling.lengths(
                honest + [Self.lengths("liar", median: 30, samples: 100), malformed],
                excluded: ["liar"]
            )
            .first
        )
        #expect(excluded.robots == 3 && excluded.quantiles == agreeing.quantiles)
    }

    @Test func theFleetSectionOfAPolicyNeverHoldsAPassword() throws {
        let policy = try PolicyDecoder.decode(
            "kind: policy\nfleet:\n  host: fleet.example\n  user: r1\n  password_file: /etc/edgeplan/pw\n",
            file: "p.yaml"
        )
        #expect(policy.fleet == FleetPolicy(host: "fleet.example", user: "r1", passwordFile: "/etc/edgeplan/pw"))
        #expect(throws: EdgePlanError.self) {
            try PolicyDecoder.decode("kind: policy\nfleet:\n  host: h\n  user: r1\n  password: x\n", file: "p.yaml")
        }
        #expect(throws: EdgePlanError.self) {
            try PolicyDecoder.decode("kind: policy\nfleet:\n  host: h\n  user: r1\n  tls: sometimes\n", file: "p.yaml")
        }
        #expect(try PolicyDecoder.decode("kind: policy\n", file: "p.yaml").fleet == nil)
        // A client certificate and its key go together, and need TLS.
        let byCertificate = try PolicyDecoder.decode(
            "kind: policy\nfleet:\n  host: h\n  user: r1\n  tls_cert_file: /c.pem\n  tls_key_file: /k.pem\n",
            file: "p.yaml"
        )
        #expect(byCertificate.fleet?.tlsCertFile == "/c.pem" && byCertificate.fleet?.tlsKeyFile == "/k.pem")
        for (text, key) in [
            ("  tls_key_file: /k.pem\n", "tls_key_file"),
            ("  tls: disable\n  tls_cert_file: /c.pem\n", "tls_cert_file"),
        ] {
            do {
                _ = try PolicyDecoder.decode("kind: policy\nfleet:\n  host: h\n  user: r1\n" + text, file: "p.yaml")
                Issue.record("accepted \(text)")
            } catch let error as EdgePlanError {
                #expect("\(error)".contains(key), "\(error)")
            }
        }
    }
}

/// A fleet version as a robot's prior: bounded pseudo-outcomes from one reserved peer.
struct FleetPriorTests {
    @Test func aVersionBecomesBoundedPseudoOutcomes() throws {
        let body = try JSONValue.parse(
            Array(
                #"{"accuracy": [{"task": "grasp-plan", "model": "Qwen2.5-7B-it", "quantization": "fp16", "mode": "direct", "budgetTokens": null, "capped": false, "parallel": 1, "accuracy": 0.3, "trials": 900, "robots": 3, "bounded": {}}, {"task": "t", "model": "m", "quantization": "fp16", "mode": "direct", "parallel": 1, "accuracy": 0.5, "trials": 10}, {"task": "t", "model": "m", "quantization": "no pe", "mode": "direct", "accuracy": 0.5, "trials": 10}]}"#
                    .utf8
            )
        )
        let outcomes = FleetPrior.outcomes(body)
        let grasp = outcomes.filter { $0.taskClass == "grasp-plan" }
        #expect(grasp.count == FleetPrior.maxWeight)
        #expect(grasp.filter { $0.correct == true }.count == 60)
        #expect(grasp.allSatisfy { $0.peer == FleetPrior.peer && $0.sampleOutputTokens.isEmpty })
        // Interleaved: the first half says what the whole says.
        #expect(grasp.prefix(100).filter { $0.correct == true }.count == 30)
        // A small group counts its own trials; a quantization whose name breaks the rule is skipped.
        #expect(outcomes.count == FleetPrior.maxWeight + 10)
    }

    @Test func aVersionsLengthsBecomeSingleSamplesSpanningItsQuantiles() throws {
        let quantiles = (1...20).map { $0 * 10 }
        let body = JSONValue.fields([
            "lengths": .array([
                .fields([
                    "task": .string("t"), "model": .string("m"), "quantization": .string("fp16"),
                    "mode": .string("hard"), "budgetTokens": .int(256), "capped": .bool(true),
                    "quantileTokens": .array(quantiles.map(JSONValue.int)), "samples": .number(1200),
                ]),
                .fields([
                    "task": .string("t"), "model": .string("m"), "quantization": .string("fp16"),
                    "mode": .string("base"), "quantileTokens": .array([.string("x")]), "samples": .number(10),
                ]),
            ])
        ])
        let outcomes = FleetPrior.outcomes(body)
        #expect(outcomes.count == FleetPrior.maxWeight, "capped at the prior's weight; a malformed group is skipped")
        #expect(
            outcomes.allSatisfy {
                $0.correct == nil && $0.peer == FleetPrior.peer && $0.configuration.parallel == 1
                    && $0.configuration.budgetTokens == 256 && $0.configuration.capped
                    && $0.sampleOutputTokens.count == 1
            }
        )
        // Every twenty visit each quantile once, and any prefix spreads over the distribution.
        #expect(Set(outcomes.prefix(20).map { $0.sampleOutputTokens[0] }) == Set(quantiles))
        #expect(Set(outcomes.prefix(3).map { $0.sampleOutputTokens[0] }) == [10, 80, 150])
    }

    @Test func aFleetThatSaysLongerIsBelievedAtOnceAndNeverShorterThanThePrior() throws {
        let planner = Fixtures.planner
        let space = try #require(planner.space("mmlu-redux"))
        let candidate = try #require(
            space.candidates.first {
                $0.configuration.variant.model == "DSR1-Qwen-14B" && $0.configuration.mode == .base
                    && $0.configuration.parallel == 1 && $0.configuration.variant.quantization == .fp16
            }
        )
        func body(scale: Double) -> JSONValue {
            let prior = candidate.outputLength
            let quantiles = FleetPooling.lengthLevels.map {
                Int(
                    min(
                        exp(prior.mu + prior.sigma * Normal.quantile($0)) * scale,
                        Double(candidate.variant.contextTokens)
                    )
                )
            }
            return .fields([
                "lengths": .array([
                    .fields([
                        "task": .string("mmlu-redux"), "model": .string("DSR1-Qwen-14B"),
                        "quantization": .string("fp16"), "mode": .string("base"), "capped": .bool(false),
                        "quantileTokens": .array(quantiles.map(JSONValue.int)), "samples": .number(1000),
                    ])
                ])
            ])
        }
        let key = LearnedOverlay.Key(taskClass: "mmlu-redux", configuration: candidate.configuration)
        var longer = Learner()
        for outcome in FleetPrior.outcomes(body(scale: 1.5)) { longer.learn(outcome, planner: planner) }
        let learned = try #require(longer.overlay.lengths[key])
        #expect(
            learned.meanTokens > candidate.outputLength.meanTokens * 1.2,
            "\(learned.meanTokens) vs prior \(candidate.outputLength.meanTokens)"
        )
        var shorter = Learner()
        for outcome in FleetPrior.outcomes(body(scale: 0.25)) { shorter.learn(outcome, planner: planner) }
        // The fleet is one peer: no learned length shorter than the prior (mean or p95) is believed from it alone.
        let prior = candidate.outputLength
        let believed = shorter.overlay.lengths[key]
        #expect(
            believed.map { $0.meanTokens >= prior.meanTokens && $0.quantile(0.95) >= prior.quantile(0.95) } ?? true,
            "\(String(describing: believed)) vs prior \(prior)"
        )
    }

    // MARK: A robot's view: its own rows left out

    static func tally(_ robot: String, _ successes: Int, _ trials: Int, task: String = "t") -> FleetPooling.Tally {
        FleetPooling.Tally(
            robot: robot,
            taskClass: task,
            model: "m",
            quantization: "fp16",
            mode: "hard",
            successes: successes,
            trials: trials
        )
    }

    static func lengths(_ robot: String, _ scale: Double, samples: Int = 100) -> FleetPooling.LengthSummary {
        FleetPooling.LengthSummary(
            robot: robot,
            taskClass: "t",
            model: "m",
            quantization: "fp16",
            mode: "hard",
            samples: samples,
            quantiles: FleetPooling.lengthLevels.map { (50 + 100 * $0) * scale }
        )
    }

    @Test func aRobotsViewIsTheOthersPoolAndDropsWhatOnlyItMade() throws {
        let tallies = [Self.tally("a", 190, 200), Self.tally("b", 60, 100), Self.tally("a", 30, 40, task: "alone")]
        let summaries = [Self.lengths("a", 1), Self.lengths("b", 2, samples: 50), Self.lengths("c", 3)]
        let body = FleetPooling.body(
            calibrations: [],
            accuracy: FleetPooling.accuracy(tallies),
            lengths: FleetPooling.lengths(summaries)
        )
        let views = FleetPooling.views(tallies: tallies, summaries: summaries)
        #expect(Set(views.keys) == ["a", "b", "c"])
        let (forA, own) = FleetPooling.withoutOwnRows(body, view: views["a"])
        #expect(own == FleetPooling.OwnRows(pooledWithout: 2, dropped: 1))
        // a learns b's 60 of 100 alone, not the pool of both (which a's 190 of 200 lifts), and nothing of "alone".
        let accuracy = try #require(forA["accuracy"]?.arrayValue)
        #expect(accuracy.count == 1 && accuracy[0]["task"]?.stringValue == "t")
        #expect(abs(accuracy[0]["accuracy"]!.doubleValue! - 0.6) < 1e-12 && accuracy[0]["trials"]?.doubleValue == 100)
        // Its lengths are b's and c's mixture, exactly as pooling them alone gives it.
        let others = FleetPooling.lengths(summaries.filter { $0.robot != "a" })
        #expect(forA["lengths"]?.arrayValue == others.map(FleetPooling.json))
        // A robot whose rows are none of the version's learns it as it is.
        #expect(FleetPooling.withoutOwnRows(body, view: nil).body == body)
    }

    @Test func rolesThatReportOneRobotIdAreLeftOutTogether() throws {
        let tallies = [Self.tally("a", 190, 200), Self.tally("a2", 95, 100), Self.tally("b", 60, 100)]
        let views = FleetPooling.views(
            tallies: tallies,
            summaries: [],
            robotIDs: ["a": "m-1", "a2": "m-1", "b": "m-2"]
        )
        let forA = try #require(views["a"]?["accuracy"]?.arrayValue?.first)
        #expect(abs(forA["accuracy"]!.doubleValue! - 0.6) < 1e-12 && forA["robots"]?.intValue == 1)
        // b hears both of a's roles, and each is bounded as one of two robots would be.
        let forB = try #require(views["b"]?["accuracy"]?.arrayValue?.first)
        #expect(forB["robots"]?.intValue == 2)
    }

    @Test func aGroupWithoutOneRobotIsTheSameBySearchAsByWalk() throws {
        // Forty robots whose lengths differ by a few percent (none bounded), with ties and skewed weights.
        var generator = SplitMix(seed: 7)
        let members = (0..<40).map { index in
            let scale = 0.95 + 0.1 * Double(generator.next() % 1000) / 1000
            var summary = Self.lengths("r\(index)", scale, samples: 20 + Int(generator.next() % 600))
            summary.quantiles = summary.quantiles.map { ($0 / 5).rounded() * 5 }
            return summary
        }
        let key = try #require(FleetPooling.lengthGroups(members, excluded: []).keys.first)
        let group = FleetPooling.LengthGroup(key, members, options: FleetPooling.Options())
        var searched = 0
        for index in members.indices {
            let walked = FleetPooling.poolLengths(group, options: FleetPooling.Options(), leaving: [index], walk: true)
            let fast = FleetPooling.poolLengths(group, options: FleetPooling.Options(), leaving: [index])
            #expect(walked == fast, "without r\(index)")
            if walked?.bounded.isEmpty == true { searched += 1 }
        }
        #expect(searched == members.count, "every leave-one-out took the search")
    }
}
