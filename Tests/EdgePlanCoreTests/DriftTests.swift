import Foundation
import Testing

@testable import EdgePlanCore

/// A small deterministic generator so replays are repeatable.
struct SeededRandom {
    var state: UInt64
    mutating func next() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53)
    }
    /// Standard normal by Box-Muller.
    mutating func normal() -> Double { (-2 * log(max(next(), 1e-12))).squareRoot() * cos(2 * .pi * next()) }
}

@Suite struct DriftTests {
    @Test func shiftDetectorIgnoresNoiseAndCatchesAStep() {
        var random = SeededRandom(state: 1)
        var detector = ShiftDetector()
        for _ in 0..<5000 { #expect(detector.add(0.03 * random.normal()) == nil) }
        var alarm: ShiftDetector.Shift?
        var fed = 0
        while alarm == nil && fed < 100 {
            alarm = detector.add(log(1.3) + 0.03 * random.normal())
            fed += 1
        }
        let shift = try! #require(alarm)
        #expect(shift.direction == 1)
        #expect(fed <= 25)
        #expect(abs(exp(shift.meanLogRatio) - 1.3) < 0.1)
    }

    @Test func oneAbsurdSampleDoesNotRaiseAnAlarm() {
        var detector = ShiftDetector()
        #expect(detector.add(log(1000)) == nil)
        for _ in 0..<100 { #expect(detector.add(0) == nil) }
    }

    @Test func segmenterFindsLevelsAndChanges() {
        var random = SeededRandom(state: 7)
        let series = (0..<600).map { i -> Double in
            (i < 250 ? 0.033 : i < 450 ? 0.100 : 0.030) * (1 + 0.05 * random.normal())
        }
        let (segments, changes) = RegimeSegmenter().segment(series)
        #expect(segments.count == 3)
        #expect(changes.count == 2)
        #expect(changes.allSatisfy { $0.delay <= 8 })
        #expect(abs(changes[0].onset - 250) <= 3 && abs(changes[1].onset - 450) <= 3)
        #expect(abs(segments[1].median - 0.1) < 0.005)
    }

    @Test func contextChangeStartsANewBaseline() {
        var monitor = DriftMonitor(at: 0)
        _ = monitor.setContext("pmode:0000", at: 0)
        for i in 0..<10 { _ = monitor.observe(predicted: 1, observed: 1.01, at: Double(i)) }
        #expect(monitor.state == .calibrated)
        #expect(monitor.setContext("pmode:0002", at: 20) == .contextChanged(from: "pmode:0000", to: "pmode:0002"))
        #expect(monitor.state == .baselining)
        #expect(monitor.calibrationAge(at: 30) == 30)
    }

    /// The drift replay: the device becomes 25 % slower half-way through a stream of hard-capped plans.
    @Test func deadlineHitsRecoverAfterTheDeviceSlowsDown() throws {
        let policy = try PolicyDecoder.decode(
            """
            kind: policy
            global:
              latency_percentile: 0.999
            tasks:
              mmlu-redux:
                allowed_modes: [hard]
            """,
            file: "replay.yaml"
        )
        var loop = CalibrationLoop(profile: Fixtures.profile, at: 0)
        var planner = try Planner(profile: loop.profile, policy: policy)
        var truth = Fixtures.profile
        var random = SeededRandom(state: 42)
        let slowdownAt = 300
        let total = 1500
        var hits: [Bool] = []
        var detectedAt: Int?
        var refused = 0
        var reportsAtSlowdown = 0
        for index in 0..<total {
            if index == slowdownAt {
                reportsAtSlowdown = hits.count
                for (id, variant) in truth.variants {
                    var slower = variant
                    slower.decodeLatency.nSPerToken *= 1.25
                    slower.decodeLatency.mSPerToken2 *= 1.25
                    slower.prefillLatency.aSPerToken2 *= 1.25
                    slower.prefillLatency.bSPerToken *= 1.25
                    slower.prefillLatency.cS *= 1.25
                    truth.variants[id] = slower
                }
            }
            let deadline = [3.0, 6.0, 12.0][index % 3]
            guard
                case let .plan(plan) = try planner.plan(
                    PlanRequest(task: "mmlu-redux", deadlineS: deadline, inputTokens: 256)
                )
            else {
                // Once the profile knows the device is slower, the tightest deadline may be refused outright.
                refused += 1
                continue
            }
            let budget = try #require(plan.configuration.budgetTokens)
            // Output lengths drawn from the profile's own length model; the run lasts as long as its longest sample.
            #expect(plan.outputLength.capTokens == budget)
            let lengths = plan.outputLength
            let output = (0..<plan.configuration.parallel).map { _ in Int(lengths.quantile(random.next()).rounded(.up))
            }.max()!
            let trueVariant = truth.variants[plan.configuration.variant]!
            let latency =
                Predictor(device: truth.device).predict(
                    trueVariant,
                    input: 256,
                    output: Double(output),
                    parallel: plan.configuration.parallel
                ).latencyS * (1 + 0.01 * random.normal())
            hits.append(latency <= deadline)
            let run = RunReport(
                variant: plan.configuration.variant,
                inputTokens: 256,
                outputTokens: output,
                parallel: plan.configuration.parallel,
                latencyS: latency,
                energyJ: nil,
                time: Double(index)
            )
            for event in loop.report(run, at: Double(index)) {
                switch event {
                case .drift where index >= slowdownAt && detectedAt == nil: detectedAt = hits.count
                case let .recalibrated(_, _, profile): planner = try Planner(profile: profile, policy: policy)
                default: break
                }
            }
        }
        func rate(_ range: Range<Int>) -> Double { Double(hits[range].filter { $0 }.count) / Double(range.count) }
        let detected = try #require(detectedAt) - reportsAtSlowdown
        // Reports after the slowdown until every later window of 100 plans hits at least 99 % of deadlines.
        let end = hits.count - 100
        let recovered = (reportsAtSlowdown..<end).first { start in
            stride(from: start, to: end, by: 10).allSatisfy { rate($0..<($0 + 100)) >= 0.99 }
        }.map { $0 - reportsAtSlowdown }
        let misses = (reportsAtSlowdown..<hits.count).filter { !hits[$0] }.map { $0 - reportsAtSlowdown }
        print(
            "drift replay: \(misses.count) missed deadlines after the slowdown, the last at report \(misses.last ?? 0); detected after \(detected) reports; deadline-hit rate (every window of 100) back to >= 99 % after \(recovered.map(String.init) ?? "never") reports; \(loop.recalibrations) recalibrations; \(refused) requests refused as infeasible; hit rate before \(rate(0..<reportsAtSlowdown)), last 500 \(rate((hits.count - 500)..<hits.count))"
        )
        #expect(rate(0..<reportsAtSlowdown) >= 0.99)
        #expect(detected <= 40)
        let recovery = try #require(recovered)
        #expect(recovery <= 200)
    }

    /// 5 % absurd reports among honest ones move no refitted coefficient by more than 2 %.
    @Test func absurdReportsDoNotDragCoefficients() throws {
        let variant = try Fixtures.profile.variant(model: "DSR1-Llama-8B", quantization: .fp16)
        let predictor = Predictor(device: Fixtures.profile.device)
        var random = SeededRandom(state: 3)
        var clean: [RunReport] = []
        var dirty: [RunReport] = []
        for index in 0..<400 {
            let output = 50 + Int(random.next() * 1500)
            let input = 64 + Int(random.next() * 1000)
            let predicted = predictor.predict(variant, input: input, output: Double(output))
            let run = RunReport(
                variant: variant.id,
                inputTokens: input,
                outputTokens: output,
                parallel: 1,
                latencyS: predicted.latencyS * (1 + 0.01 * random.normal()),
                energyJ: predicted.energyJ * (1 + 0.01 * random.normal()),
                time: Double(index)
            )
            clean.append(run)
            var absurd = run
            if index % 20 == 7 {
                absurd.latencyS *= [0.01, 50, 3, 0.3][index / 20 % 4]
                absurd.energyJ! *= [100, 0.001, 4, 0.2][index / 20 % 4]
            }
            dirty.append(absurd)
        }
        let reference = try Recalibrator().refit(
            variant,
            device: Fixtures.profile.device,
            runs: clean,
            at: 400,
            label: "clean"
        ).candidate
        let outcome = try Recalibrator().refit(
            variant,
            device: Fixtures.profile.device,
            runs: dirty,
            at: 400,
            label: "with absurd reports"
        )
        let fresh = outcome.candidate
        func moved(_ a: Double, _ b: Double) -> Double { abs(a / b - 1) }
        let n = moved(fresh.decodeLatency.nSPerToken, reference.decodeLatency.nSPerToken)
        let m = moved(fresh.decodeLatency.mSPerToken2, reference.decodeLatency.mSPerToken2)
        let power = moved(
            fresh.decodePower.averagePowerW(tokens: 500, seconds: 50),
            reference.decodePower.averagePowerW(tokens: 500, seconds: 50)
        )
        print(
            "absurd reports (5 %): n moved \(n * 100) %, m \(m * 100) %, decode power \(power * 100) %; \(outcome.rejectedOutliers) runs given zero weight"
        )
        #expect(n < 0.02 && m < 0.02 && power < 0.02)
        // The clean fit itself lands on the profile that generated the runs.
        #expect(moved(reference.decodeLatency.nSPerToken, variant.decodeLatency.nSPerToken) < 0.01)
    }
}

struct PlausibilityTests {
    let profile = Fixtures.profile
    let id = VariantID(model: "DSR1-Qwen-1.5B", quantization: .fp16)

    func run(latencyFactor: Double, output: Int = 200, at time: Double) -> RunReport {
        let variant = profile.variants[id]!
        let predicted = Predictor(device: profile.device).predict(variant, input: 256, output: Double(output)).latencyS
        return RunReport(
            variant: id,
            inputTokens: 256,
            outputTokens: output,
            parallel: 1,
            latencyS: predicted * latencyFactor,
            energyJ: nil,
            time: time
        )
    }

    @Test func implausibleRunsNeverReachAFit() {
        var loop = CalibrationLoop(profile: profile, at: 0)
        // Slower than contention makes a run (more than 20 times the prediction), then faster than the profile allows.
        for index in 0..<150 { _ = loop.report(run(latencyFactor: 30, at: Double(index)), at: Double(index)) }
        for index in 150..<300 { _ = loop.report(run(latencyFactor: 0.2, at: Double(index)), at: Double(index)) }
        // Faster than the memory bandwidth allows: 1000 tokens in a millisecond.
        for index in 300..<400 {
            _ = loop.report(
                RunReport(
                    variant: id,
                    inputTokens: 256,
                    outputTokens: 1000,
                    parallel: 1,
                    latencyS: 0.001,
                    energyJ: nil,
                    time: Double(index)
                ),
                at: Double(index)
            )
        }
        #expect(loop.monitors[id]?.implausible == 400)
        #expect(loop.periodicRefit(at: 10_000).isEmpty)
        #expect(loop.recalibrations == 0)
    }

    @Test func recalibrationIsRateLimited() {
        var loop = CalibrationLoop(profile: profile, at: 0)
        var recalibrated = 0
        // A flood: 3000 reports in 3 s from a device 30 % slower, refits asked for after every report.
        for index in 0..<3000 {
            let now = Double(index) / 1000
            for event in loop.report(run(latencyFactor: 1.3, output: 100 + index % 400, at: now), at: now)
                + loop.periodicRefit(at: now)
            {
                if case .recalibrated = event { recalibrated += 1 }
            }
        }
        #expect(recalibrated >= 1)
        #expect(recalibrated <= 1, "one refit per variant per \(loop.minimumRefitIntervalS) s")
    }
}
