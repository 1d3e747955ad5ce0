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
