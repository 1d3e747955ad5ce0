import EdgePlanCore
import Foundation
import Testing

struct ProfileTests {
    @Test func bundledProfileShipsEveryModelOfThePaper() {
        let names = Set(Fixtures.profile.variants.keys.map(\.description))
        for name in [
            "DSR1-Qwen-1.5B/fp16", "DSR1-Llama-8B/fp16", "DSR1-Qwen-14B/fp16", "L1-Max/fp16", "DSR1-Qwen-1.5B/awq-w4",
            "DSR1-Llama-8B/awq-w4", "DSR1-Qwen-14B/awq-w4", "Qwen2.5-1.5B-it/fp16", "Qwen2.5-7B-it/fp16",
            "Llama3.1-8B-it/fp16", "Qwen2.5-14B-it/fp16", "Gemma-7B-it/fp16",
        ] {
            #expect(names.contains(name), "missing \(name)")
        }
        #expect(ProfileChecker.check(BundledResources.profileFiles).filter { $0.severity == .error }.isEmpty)
    }

    @Test func bundledCopyMatchesTheProfileDirectory() throws {
        for file in BundledResources.profileFiles {
            let onDisk = try String(
                contentsOfFile: "\(Fixtures.repositoryRoot)/profiles/jetson-agx-orin-64gb/\(file.path)",
                encoding: .utf8
            )
            #expect(onDisk == file.text, "\(file.path) differs: run scripts/embed-resources.py")
        }
        let policy = try String(contentsOfFile: "\(Fixtures.repositoryRoot)/policies/default.yaml", encoding: .utf8)
        #expect(policy == BundledResources.defaultPolicy)
    }

    @Test func unknownFieldIsAnErrorNamingFileLineAndField() {
        let files = Fixtures.mutatedFiles("models/dsr1-llama-8b.fp16.yaml") {
            $0.replacingOccurrences(of: "bytes_per_weight:", with: "bytes_per_weigth:")
        }
        let problems = ProfileChecker.check(files)
        let problem = problems.first { $0.file == "models/dsr1-llama-8b.fp16.yaml" }
        #expect(problem?.severity == .error)
        #expect(problem?.line != nil)
        #expect(problem?.field == "bytes_per_weigth" || problem?.field == "bytes_per_weight")
    }

    @Test func fieldWithoutUnitIsRejected() {
        let files = Fixtures.mutatedFiles("device.yaml") {
            $0.replacingOccurrences(of: "idle_power_w:", with: "idle_power:")
        }
        #expect(
            ProfileChecker.check(files).contains {
                $0.field == "idle_power_w" && $0.message.contains("'idle_power'") && $0.message.contains("unit")
            }
        )
    }

    @Test func outOfRangeAndNonNumericValuesAreErrors() {
        let negative = Fixtures.mutatedFiles("device.yaml") {
            $0.replacingOccurrences(of: "memory_bandwidth_gbps: 204.8", with: "memory_bandwidth_gbps: -5")
        }
        #expect(ProfileChecker.check(negative).contains { $0.field == "memory_bandwidth_gbps" })
        let text = Fixtures.mutatedFiles("device.yaml") {
            $0.replacingOccurrences(of: "memory_gib: 64", with: "memory_gib: lots")
        }
        #expect(ProfileChecker.check(text).contains { $0.field == "memory_gib" && $0.message.contains("number") })
    }

    @Test func physicallyImpossibleDecodeIsCaught() {
        let files = Fixtures.mutatedFiles("models/dsr1-qwen-14b.fp16.yaml") {
            $0.replacingOccurrences(of: "n_s_per_token: 0.187", with: "n_s_per_token: 0.01")
        }
        #expect(
            ProfileChecker.check(files).contains { $0.field == "decode.latency.n_s_per_token" && $0.severity == .error }
        )
    }

    @Test func truncatedFileIsAnErrorNotACrash() {
        let files = Fixtures.mutatedFiles("models/l1-max.fp16.yaml") { String($0.prefix(200)) }
        #expect(ProfileChecker.check(files).contains { $0.file == "models/l1-max.fp16.yaml" && $0.severity == .error })
        #expect(throws: EdgePlanError.self) { try ProfileDecoder.decode(files) }
    }

    @Test func rooflineProfileIsUsableAndMarked() throws {
        let template = try Fixtures.profile.variant(model: "DSR1-Llama-8B", quantization: .fp16)
        let derived = Roofline.derive(
            model: "Phi-3-mini",
            quantization: .fp16,
            family: .direct,
            parametersBillion: 3.8,
            bytesPerWeight: 2,
            kvCacheBytesPerToken: 393_216,
            contextTokens: 4096,
            device: Fixtures.profile.device,
            like: template
        )
        #expect(derived.calibration == .roofline)
        let problems = ProfileChecker.physicalProblems(derived, device: Fixtures.profile.device, file: "phi.yaml")
        #expect(!problems.contains { $0.severity == .error })
        #expect(problems.contains { $0.field == "calibration" })
        #expect(Predictor(device: Fixtures.profile.device).predict(derived, input: 256, output: 128).latencyS > 0)
    }

    @Test func unknownModelNamesTheKnownOnes() {
        #expect { try Fixtures.profile.variant(model: "GPT-5", quantization: .fp16) } throws: { error in
            (error as? EdgePlanError)?.code == .unknownModel && "\(error)".contains("DSR1-Llama-8B")
        }
    }

    @Test func quantitiesParseWithUnitsAndRejectNonsense() throws {
        #expect(try QuantityParser.seconds("250ms") == 0.25)
        #expect(try QuantityParser.seconds("2m") == 120)
        #expect(try QuantityParser.joules("1.5kJ") == 1500)
        for bad in ["", "-5s", "0s", "fast", "5 parsecs", "nan", "1e999s"] {
            #expect(throws: EdgePlanError.self) { try QuantityParser.seconds(bad) }
        }
    }

    @Test func measurementFilesWithGarbageGiveClearErrors() {
        #expect(throws: EdgePlanError.self) {
            try MeasurementDecoder.decode(
                Array("{\"data\": {\"m\": {\"input_tokens\": [1,2], \"ttft_ms\": [1]}}}".utf8),
                file: "x.json"
            )
        }
        #expect(throws: EdgePlanError.self) { try MeasurementDecoder.decode(Array("not json".utf8), file: "x.json") }
        #expect(throws: EdgePlanError.self) {
            try MeasurementDecoder.decode(Array("{\"model\":\"a\",\"phase\":\"x\"}\n{}".utf8), file: "t.jsonl")
        }
    }
}
