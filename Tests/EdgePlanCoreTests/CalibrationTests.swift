import Foundation
import Testing

@testable import EdgePlanCore

@Suite struct CalibrationTests {
    static func bytes(_ relative: String) -> [UInt8] {
        Array(FileManager.default.contents(atPath: "\(Fixtures.repositoryRoot)/\(relative)")!)
    }

    @Test(arguments: ["DSR1-Qwen-1.5B", "DSR1-Llama-8B"])
    func h100RegimeFitsBeatOneFitAndMeetTheTargets(model: String) throws {
        let observations = try Fixtures.observations("h100/traces-\(model).jsonl")
        let series = try [128, 512, 1024, 2048].map {
            try TokenTimeSeries.decode(Self.bytes("data/h100/tbt-\(model)-I\($0)-B1.json"), file: "tbt")
        }
        let base = try Fixtures.profile.variant(model: model, quantization: .fp16)
        let report = try ProfileCalibrator().calibrate(
            base: base,
            device: DeviceCatalog.device(named: "nvidia-h100-80gb"),
            observations: observations,
            series: series,
            label: "test"
        )
        let regimes = try #require(report.regimes)
        let delays = regimes.changes.map(\.change.delay)
        print(
            "\(model) on H100: per-regime decode hold-out MAPE \(regimes.heldOutMAPE) %, one fit \(regimes.naiveHeldOutMAPE) %; \(regimes.changes.count) changes, delay max \(delays.max() ?? 0) tokens"
        )
        #expect(regimes.heldOutMAPE <= 5)
        #expect(regimes.naiveHeldOutMAPE > 4 * regimes.heldOutMAPE)
        // Both the ~30 ms and the ~100 ms regimes are found.
        #expect(regimes.regimes.contains { $0.nSPerToken < 0.045 } && regimes.regimes.contains { $0.nSPerToken > 0.09 })
        #expect(delays.allSatisfy { $0 <= 100 })
        let energy = try #require(report.phases.first { $0.phase == "decode energy" })
        #expect(energy.heldOutMAPE <= 10)
        // The written variant decodes back and passes the physical checks on the H100 datasheet.
        let text = ProfileEncoder.variant(report.variant)
        let decoded = try ProfileDecoder.decodeVariant(.init(path: "models/x.yaml", text: text))
        #expect(
            ProfileChecker.physicalProblems(
                decoded,
                device: try DeviceCatalog.device(named: "nvidia-h100-80gb"),
                file: "x"
            ).filter { $0.severity == .error }.isEmpty
        )
    }

    /// A collection whose stream came in bursts keeps only the engine's totals: too few decode records, no per-token
    /// traces. Calibrate refuses it whole rather than keep the base's decode under a "measured" label.
    @Test func decodeThatCannotBeMeasuredIsRefusedNotTakenFromTheBase() throws {
        let all = try Fixtures.observations("h100/traces-DSR1-Qwen-1.5B.jsonl")
        let singles = all.filter { $0.phase == .decode && $0.batch == 1 }
        let observations = all.filter { $0.phase == .prefill } + singles.prefix(2)
        let base = try Fixtures.profile.variant(model: "DSR1-Qwen-1.5B", quantization: .fp16)
        #expect {
            try ProfileCalibrator().calibrate(
                base: base,
                device: DeviceCatalog.device(named: "nvidia-h100-80gb"),
                observations: observations,
                series: [],
                label: "test"
            )
        } throws: { error in
            "\(error)".contains("decode cannot be measured") && "\(error)".contains("nothing was written")
        }
    }

    /// Batched runs at k = 2 and 8 only (one each): their factors are the profile's, not the base's; with none,
    /// the base's scaling is kept and says so, and calibrate lists it.
    @Test func parallelScalingFromTwoBatchedRunsIsMeasuredAndNoneIsSaid() throws {
        let all = try Fixtures.observations("h100/traces-DSR1-Qwen-1.5B.jsonl")
        let base = try Fixtures.profile.variant(model: "DSR1-Qwen-1.5B", quantization: .fp16)
        let device = try DeviceCatalog.device(named: "nvidia-h100-80gb")
        let singles = all.filter { $0.batch == 1 }
        var batched: [Observation] = []
        for k in [2, 8] {
            if let run = all.first(where: { run in
                run.phase == .decode && run.batch == k && run.outputTokens >= 32
                    && singles.contains { single in
                        single.phase == .decode && single.inputTokens == run.inputTokens
                            && single.outputTokens == run.outputTokens
                    }
            }) {
                batched.append(run)
            }
        }
        try #require(batched.count == 2, "the fixture has a batched run at k = 2 and at 8")
        let measured = try ProfileCalibrator().calibrate(
            base: base,
            device: device,
            observations: singles + batched,
            series: [],
            label: "test"
        )
        #expect(Set(measured.variant.parallel.measuredLatencyFactors.keys) == [2, 8])
        #expect(measured.variant.parallel.source.hasPrefix("factors measured at 2, 8 samples"))
        #expect(!measured.kept.contains { $0.figure == "parallel scaling" })
        let alone = try ProfileCalibrator().calibrate(
            base: base,
            device: device,
            observations: singles,
            series: [],
            label: "test"
        )
        #expect(alone.variant.parallel.source.hasPrefix("kept from the base profile"))
        #expect(alone.kept.contains { $0.figure == "parallel scaling" })
        #expect(alone.variant.parallel.latencySlopePerSample == base.parallel.latencySlopePerSample)
    }

    @Test func shippedH100ProfileIsValid() throws {
        let directory = "\(Fixtures.repositoryRoot)/profiles/nvidia-h100-80gb"
        let names = try FileManager.default.subpathsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") }
        let files = names.map {
            ProfileDecoder.File(path: $0, text: try! String(contentsOfFile: "\(directory)/\($0)", encoding: .utf8))
        }
        #expect(ProfileChecker.check(files).isEmpty)
        let profile = try ProfileDecoder.decode(files)
        #expect(profile.device.name == "nvidia-h100-80gb")
        #expect(Set(profile.variants.keys.map(\.model)) == ["DSR1-Qwen-1.5B", "DSR1-Llama-8B"])
    }

    @Test func tokenTracesWithGarbageAreClearErrors() {
        #expect(throws: EdgePlanError.self) {
            try TokenTimeSeries.decode(
                Array(#"{"model":"m","input_tokens":5,"tbt_s":[0.1,-1]}"#.utf8),
                file: "bad.json"
            )
        }
        do {
            _ = try TokenTimeSeries.decode(
                Array(#"{"model":"m","input_tokens":5,"tbt_s":[0.1,"x"]}"#.utf8),
                file: "bad.json"
            )
            Issue.record("accepted a string step time")
        } catch let error as EdgePlanError {
            #expect(error.field == "tbt_s[1]" && error.file == "bad.json")
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(throws: EdgePlanError.self) { try TokenTimeSeries.decode(Array("{not json".utf8), file: "bad.json") }
    }
}
