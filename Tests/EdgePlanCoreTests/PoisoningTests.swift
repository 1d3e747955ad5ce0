import Foundation
import Testing

@testable import EdgePlanCore

/// An authorized peer that lies about latencies: it may not outvote the other peers, and a recalibration its
/// runs dominated is rolled back once other peers' runs disagree with it.
@Suite struct PoisoningTests {
    let profile = Fixtures.profile
    let id = VariantID(model: "DSR1-Qwen-1.5B", quantization: .fp16)
    let genuine: UInt32 = 1000
    let liar: UInt32 = 2000

    func run(_ factor: Double, output: Int, peer: UInt32, at time: Double, noise: inout SeededRandom) -> RunReport {
        let predicted = Predictor(device: profile.device).predict(
            profile.variants[id]!,
            input: 256,
            output: Double(output)
        ).latencyS
        return RunReport(
            variant: id,
            inputTokens: 256,
            outputTokens: output,
            parallel: 1,
            latencyS: predicted * factor * (1 + 0.02 * noise.normal()),
            energyJ: nil,
            time: time,
            peer: peer
        )
    }

    func predictedS(_ loop: CalibrationLoop, output: Int) -> Double {
        Predictor(device: loop.profile.device).predict(loop.profile.variants[id]!, input: 256, output: Double(output))
            .latencyS
    }

    @Test func aLyingPeerMovesNoPredictionByMoreThanTenPercent() {
        var loop = CalibrationLoop(profile: profile, at: 0)
        var noise = SeededRandom(state: 3)
        let before = [100, 400, 1600].map { predictedS(loop, output: $0) }
        var rejected = 0
        // 1,000 lies at 60 % of the true latency (a third would already fail the roofline), interleaved with 100 genuine runs; refits asked for throughout.
        for index in 0..<1100 {
            let now = Double(index)
            let honest = index % 11 == 0
            let report = run(
                honest ? 1 : 0.6,
                output: 100 + (index * 37) % 1500,
                peer: honest ? genuine : liar,
                at: now,
                noise: &noise
            )
            for event in loop.report(report, at: now) + loop.periodicRefit(at: now) {
                if case .refitRejected = event { rejected += 1 }
            }
        }
        let after = [100, 400, 1600].map { predictedS(loop, output: $0) }
        for (old, new) in zip(before, after) {
            #expect(abs(new / old - 1) <= 0.10, "prediction moved from \(old) s to \(new) s")
        }
        #expect(rejected >= 1, "the liar's fits were tried and refused")
        // Genuine runs still teach: the liar stops, the device really slows by 30 %, and the profile follows.
        for index in 1100..<1400 {
            let now = Double(index)
            _ = loop.report(run(1.3, output: 100 + (index * 37) % 1500, peer: genuine, at: now, noise: &noise), at: now)
            _ = loop.periodicRefit(at: now)
        }
        for (old, new) in zip(before, [100, 400, 1600].map { predictedS(loop, output: $0) }) {
            #expect(abs(new / (old * 1.3) - 1) <= 0.10, "after a genuine slowdown: \(new) s against \(old * 1.3) s")
        }
    }

    @Test func aLoneOptimisticReporterCannotMakeTheDeviceFasterThanMeasured() {
        var loop = CalibrationLoop(profile: profile, at: 0)
        var noise = SeededRandom(state: 5)
        // A lone reporter says every run took 60 % of its time (a third would already fail the roofline): its fits
        // are tried, and held to the configured profile, since no second peer corroborates them.
        var heldBack = 0
        var recalibrated = 0
        for index in 0..<400 {
            let now = Double(index)
            for event in loop.report(
                run(0.6, output: 100 + (index * 37) % 1500, peer: liar, at: now, noise: &noise),
                at: now
            ) + loop.periodicRefit(at: now) {
                if case .recalibrated = event { recalibrated += 1 }
                if case let .refitRejected(_, outcome) = event, outcome.reason.hasPrefix("held back") { heldBack += 1 }
            }
        }
        #expect(recalibrated == 0 && heldBack >= 1)
        #expect(loop.profile.variants[id] == profile.variants[id])
    }

    @Test func aRecalibrationOtherPeersDisagreeWithIsRolledBack() throws {
        var loop = CalibrationLoop(profile: profile, at: 0)
        var noise = SeededRandom(state: 5)
        let original = profile.variants[id]!
        // The liar alone reports for a while, 160 % of the true latency: a slower device is believed at once, and a
        // lone reporter is the whole evidence.
        var recalibrated = false
        for index in 0..<400 {
            let now = Double(index)
            for event in loop.report(
                run(1.6, output: 100 + (index * 37) % 1500, peer: liar, at: now, noise: &noise),
                at: now
            ) + loop.periodicRefit(at: now) {
                if case .recalibrated = event { recalibrated = true }
            }
        }
        #expect(recalibrated)
        #expect(
            predictedS(loop, output: 400) > 1.3
                * Predictor(device: profile.device).predict(original, input: 256, output: 400).latencyS
        )
        // Then the genuine peer's runs arrive and disagree.
        var rollback: (peer: UInt32?, profile: ProfileSet)?
        for index in 400..<440 where rollback == nil {
            let now = Double(index)
            for event in loop.report(
                run(1, output: 100 + (index * 37) % 1500, peer: genuine, at: now, noise: &noise),
                at: now
            ) {
                if case let .rolledBack(variant, peer, _, profile) = event, variant == id { rollback = (peer, profile) }
            }
        }
        let rolledBack = try #require(rollback)
        #expect(rolledBack.peer == liar)
        // Every variant the poisoned fit changed (drift is carried over to the others) is back as it was.
        #expect(rolledBack.profile.variants == profile.variants)
        #expect(loop.profile.variants[id] == original)
    }

    @Test func capKeepsEachPeersMostRecentRuns() {
        var noise = SeededRandom(state: 9)
        let runs = (0..<30).map { run(1, output: 200, peer: $0 < 20 ? liar : genuine, at: Double($0), noise: &noise) }
        let capped = PeerEvidence().capped(runs[...])
        #expect(capped.filter { $0.peer == liar }.count == 10)
        #expect(capped.filter { $0.peer == genuine }.count == 10)
        #expect(capped.filter { $0.peer == liar }.map(\.time) == (10..<20).map(Double.init))
        // A lone reporter is not capped.
        #expect(PeerEvidence().capped(runs[..<20]).count == 20)
    }
}

@Suite struct ReportRateTests {
    @Test func eachPeerHasItsOwnBucket() {
        var limiter = ReportRateLimiter(rate: 10)
        func admitted(_ peer: UInt32, _ count: Int, at now: Double) -> Int {
            var admitted = 0
            for _ in 0..<count where limiter.admit(peer, at: now) { admitted += 1 }
            return admitted
        }
        // A burst of twice the rate, then one a tenth of a second.
        #expect(admitted(7, 30, at: 0) == 20)
        #expect(admitted(7, 1, at: 0.05) == 0)
        #expect(admitted(7, 1, at: 0.15) == 1)
        // Another peer is untouched by the first one's flood.
        #expect(admitted(8, 20, at: 0.15) == 20)
        // Tokens refill up to the burst, no further.
        #expect(admitted(7, 100, at: 1000) == 20)
    }
}
