import Foundation
import Testing

@testable import EdgePlanCore

/// `edgeplan simulate`'s core: deterministic, drift and learning measured against baselines, bad input refused.
struct SimulationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    static func workload(limit: Int = .max) throws -> [WorkloadTask] {
        var tasks: [WorkloadTask] = []
        for (index, line) in try text("workloads/home-robot-day.jsonl").split(separator: "\n").enumerated()
        where tasks.count < limit {
            if let task = try WorkloadDecoder.decodeLine(line, file: "home-robot-day.jsonl", lineNumber: index + 1) {
                tasks.append(task)
            }
        }
        return tasks
    }

    static func simulate(_ tasks: [WorkloadTask], baselines: [String], overlap: Bool = false) throws -> Simulator {
        let policy = try PolicyDecoder.decode(
            try text("workloads/home-robot-policy.yaml"),
            file: "home-robot-policy.yaml"
        )
        let truth = try Truth.decode(BundledResources.defaultTruth, file: "truth-default.yaml")
        var specs = [SimulatedPolicy(name: "learning", policy: policy, kind: .planner(recalibrate: true, learn: true))]
        specs += try baselines.map { try SimulatedPolicy.baseline($0, on: policy) }
        var simulator = try Simulator(
            profile: Fixtures.profile,
            truth: truth,
            policies: specs,
            options: .init(overlap: overlap)
        )
        for task in tasks { try simulator.process(task) }
        try simulator.finish()
        return simulator
    }

    @Test func sameSeedSameBytes() throws {
        let tasks = try Self.workload(limit: 200)
        let first = SimulationReport.json(try Self.simulate(tasks, baselines: ["static"]), workload: "w", truth: "t")
            .serialized(pretty: true)
        let second = SimulationReport.json(try Self.simulate(tasks, baselines: ["static"]), workload: "w", truth: "t")
            .serialized(pretty: true)
        #expect(first == second)
    }

    @Test func aDayOnTheShippedTruth() throws {
        let simulator = try Self.simulate(try Self.workload(), baselines: ["static", "mean-latency"])
        let (learning, fixed, mean) = (simulator.runs[0], simulator.runs[1], simulator.runs[2])
        // After the 20 % slowdown at 12 h the recalibrating policy keeps more deadlines than the static one.
        func afterDrift(_ run: Simulator.Run) -> Double {
            let windows = run.windows.filter { Double($0.key) * simulator.options.windowS >= 12 * 3600 }.values
            return Double(windows.map(\.onTime).reduce(0, +)) / Double(windows.map(\.requests).reduce(0, +))
        }
        #expect(learning.recalibrations > 0 && fixed.recalibrations == 0)
        #expect(afterDrift(learning) > afterDrift(fixed) + 0.05, "\(afterDrift(learning)) vs \(afterDrift(fixed))")
        // Planning on mean latency, as the paper does, misses more deadlines than percentile planning.
        #expect(mean.overall.deadlineHitRate < learning.overall.deadlineHitRate - 0.2)
        // On the class whose truth differs from its prior, learning beats the static policy's realized accuracy…
        let manipulation = "manipulation-step"
        #expect(learning.classes[manipulation]!.realizedAccuracy > fixed.classes[manipulation]!.realizedAccuracy)
        // …and its posterior lands near the truth.
        let trace = try #require(learning.traces.first)
        #expect(
            abs(trace.points.last!.accuracy - trace.truth) < 0.05,
            "learned \(trace.points.last!.accuracy), truth \(trace.truth)"
        )
    }

    /// The home robot's day with its tasks overlapping as they arrive: long plans run while reactive requests keep
    /// coming, on one engine per model. Planned against the runs it admitted, the policy keeps more deadlines and
    /// cuts fewer runs than the same policy planning as if the engine were idle; and nothing it admitted is lost.
    @Test func overlappingTasksKeepMoreDeadlinesWithTheLedger() throws {
        let tasks = try Self.workload()
        let simulator = try Self.simulate(tasks, baselines: ["ledger-on", "ledger-off"], overlap: true)
        let (on, off) = (simulator.runs[1].overall, simulator.runs[2].overall)
        #expect(on.requests == tasks.count && off.requests == tasks.count)
        #expect(on.deadlineHitRate > off.deadlineHitRate + 0.02, "\(on.deadlineHitRate) vs \(off.deadlineHitRate)")
        #expect(on.cut * 3 < off.cut, "cut \(on.cut) vs \(off.cut)")
        // Off, the runs beside each other slowed one another: the same day queued one at a time cuts none.
        let queued = try Self.simulate(tasks, baselines: ["ledger-off"])
        #expect(queued.runs[1].overall.cut == 0 && off.cut > 0)
        // Every run admitted ended by the end of the day, and left the ledger.
        #expect(simulator.runs.allSatisfy { $0.inFlight.isEmpty && $0.engines.values.allSatisfy(\.isIdle) })
        #expect(simulator.runs[1].admitted.entries.isEmpty)
    }

    @Test func badWorkloadLinesNameFileLineAndField() throws {
        let cases: [(String, String)] = [
            (#"{"task": "manipulation-step", "deadline": "8s"}"#, "at"),
            (#"{"at": "-5s", "task": "manipulation-step"}"#, "at"),
            (#"{"at": "5s", "task": "manipulation-step", "deadline": "8"}"#, "deadline"),
            (#"{"at": "5s", "task": "manipulation-step", "energy": "200"}"#, "energy"),
            (#"{"at": "5s", "task": "manipulation-step", "input_tokens": 0}"#, "input_tokens"),
            (#"{"at": "5s", "task": "manipulation-step", "deadlne": "8s"}"#, "deadlne"),
            (#"["at", 5]"#, ""),
        ]
        for (line, field) in cases {
            #expect { try WorkloadDecoder.decodeLine(line, file: "w.jsonl", lineNumber: 12) } throws: { error in
                let error = error as? EdgePlanError
                return error?.file == "w.jsonl" && error?.line == 12 && (field.isEmpty || error?.field == field)
            }
        }
        #expect(try WorkloadDecoder.decodeLine("# a comment", file: "w.jsonl", lineNumber: 1) == nil)
        #expect {
            try WorkloadDecoder.decodeYAML(
                "kind: workload\ntasks:\n  - {at: 10s, task: a}\n  - {at: 5s, task: a}\n",
                file: "w.yaml"
            )
        } throws: {
            ($0 as? EdgePlanError)?.line == 4
        }
    }

    @Test func unknownTaskClassesAndBackwardTimeStopTheRun() throws {
        var simulator = try Self.simulate([], baselines: [])
        #expect { try simulator.process(WorkloadTask(arrivalS: 1, taskClass: "juggling")) } throws: {
            ($0 as? EdgePlanError)?.code == .unknownTask
        }
        try simulator.process(WorkloadTask(arrivalS: 10, taskClass: "manipulation-step"))
        #expect(throws: EdgePlanError.self) {
            try simulator.process(WorkloadTask(arrivalS: 5, taskClass: "manipulation-step"))
        }
    }

    @Test func badTruthFilesNameTheLine() throws {
        #expect {
            try Truth.decode("kind: truth\ndrift:\n  - {at: 1h, kind: melt, factor: 2}\n", file: "t.yaml")
        } throws: {
            ($0 as? EdgePlanError)?.line == 3 && ($0 as? EdgePlanError)?.field == "drift[0].kind"
        }
        #expect {
            try Truth.decode("kind: truth\ndrift:\n  - {at: 1h, kind: throttle, factor: 2}\n", file: "t.yaml")
        } throws: {
            ($0 as? EdgePlanError)?.field == "drift[0].duration"
        }
        #expect {
            try Truth.decode("kind: truth\ndrift:\n  - {at: 3600, kind: slowdown, factor: 2}\n", file: "t.yaml")
        } throws: {
            ($0 as? EdgePlanError)?.message.contains("unit") == true
        }
    }

    @Test func truthScalesTheDeviceOverTime() throws {
        let truth = try Truth.decode(
            "kind: truth\ndrift:\n  - {at: 1h, kind: slowdown, factor: 1.2}\n  - {at: 2h, kind: throttle, factor: 1.5, duration: 30m}\n",
            file: "t.yaml"
        )
        #expect(truth.slowdown(at: 0) == 1)
        #expect(abs(truth.slowdown(at: 7200 + 60) - 1.8) < 1e-12)
        #expect(abs(truth.slowdown(at: 7200 + 1900) - 1.2) < 1e-12)
    }

    @Test func generatedWorkloadsAreDeterministicAtTheirRate() throws {
        let mix = try WorkloadMix.decode(try Self.text("workloads/home-robot-mix.yaml"), file: "mix.yaml")
        var first: [WorkloadTask] = []
        var second: [WorkloadTask] = []
        mix.generate(ratePerS: 1.0 / 60, durationS: 86_400, seed: 3) { first.append($0) }
        mix.generate(ratePerS: 1.0 / 60, durationS: 86_400, seed: 3) { second.append($0) }
        #expect(first == second)
        #expect(abs(Double(first.count) - 1440) < 4 * 1440.0.squareRoot())
        #expect(zip(first, first.dropFirst()).allSatisfy { $0.arrivalS <= $1.arrivalS })
        // A generated line reads back as the same task.
        let line = first[0].jsonLine
        #expect(try WorkloadDecoder.decodeLine(line, file: "g", lineNumber: 1) == first[0])
    }
}
