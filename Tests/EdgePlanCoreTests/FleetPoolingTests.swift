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
        // Its volume is capped at 400 outcomes first.
        #expect(abs(optimist.trials - 1300) < 1e-9)
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
    }
}

/// A fleet version as a robot's prior: bounded pseudo-outcomes from one reserved peer.
struct FleetPriorTests {
    @Test func aVersionBecomesBoundedPseudoOutcomes() throws {
        let body = try JSONValue.parse(
            Array(
                #"{"accuracy": [{"task": "grasp-plan", "model": "Qwen2.5-7B-it", "quantization": "fp16", "mode": "direct", "budgetTokens": null, "capped": false, "parallel": 1, "accuracy": 0.3, "trials": 900, "robots": 3, "bounded": {}}, {"task": "t", "model": "m", "quantization": "fp16", "mode": "direct", "parallel": 1, "accuracy": 0.5, "trials": 10}, {"task": "t", "model": "m", "quantization": "nope", "mode": "direct", "accuracy": 0.5, "trials": 10}]}"#
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
        // A small group counts its own trials; an unknown quantization is skipped.
        #expect(outcomes.count == FleetPrior.maxWeight + 10)
    }
}
