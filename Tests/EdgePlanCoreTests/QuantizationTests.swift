import Foundation
import Testing

@testable import EdgePlanCore

/// Quantization is an open name: GGUF's types, other engines' formats, any case; read from a GGUF file's type; kept
/// through a profile file, a trace and a policy; and a name that breaks the rule is refused with the rule.
@Suite struct QuantizationTests {
    @Test func namesAreOpenLowerCasedAndF16IsFp16() throws {
        #expect(Quantization(rawValue: "Q4_K_M")?.rawValue == "q4_k_m")
        #expect(Quantization(rawValue: "F16") == .fp16 && Quantization(rawValue: "fp16") == .fp16)
        #expect(Quantization(rawValue: "AWQ-W4") == .awqW4)
        #expect(Quantization(rawValue: "nvfp4")?.rawValue == "nvfp4")
        for bad in ["", "q4 k m", "-q4", "_q4", ".q4", String(repeating: "q", count: 33), "q4ü", "q4/0"] {
            #expect(Quantization(rawValue: bad) == nil, "\(bad) was taken")
        }
        #expect(Quantization.rule("q4 k m").contains("unknown quantization 'q4 k m'"))
    }

    @Test func ggufFileTypesNameTheirQuantization() {
        #expect(Quantization.ggufFileType(1) == .fp16)
        #expect(Quantization.ggufFileType(7)?.rawValue == "q8_0")
        #expect(Quantization.ggufFileType(15)?.rawValue == "q4_k_m")
        #expect(Quantization.ggufFileType(32)?.rawValue == "bf16")
        #expect(Quantization.ggufFileType(5) == nil && Quantization.ggufFileType(1024) == nil)
    }

    @Test func nominalBitsAndTheRooflinesPeakFollowTheFormat() throws {
        let q4 = try #require(Quantization(rawValue: "q4_0"))
        #expect(q4.nominalBitsPerWeight == 4.5 && !q4.isSixteenBitOrWider)
        #expect(Quantization.fp16.isSixteenBitOrWider && Quantization(rawValue: "bf16")!.isSixteenBitOrWider)
        // A format this build does not know has no nominal figure: its bytes come from its file.
        #expect(Quantization(rawValue: "exl3-w3")?.nominalBitsPerWeight == nil)
        let device = Fixtures.profile.device
        var variant = try #require(Fixtures.profile.variants.values.first { $0.id.quantization == .fp16 })
        let wide = Roofline.prefillFloorS(variant, device: device, input: 1024)
        variant.id.quantization = q4
        let narrow = Roofline.prefillFloorS(variant, device: device, input: 1024)
        #expect(narrow < wide)
    }

    @Test func aVariantOfAnOpenQuantizationRoundTripsThroughItsFile() throws {
        var variant = try #require(Fixtures.profile.variants.values.first)
        variant.id.quantization = try #require(Quantization(rawValue: "Q5_K_M"))
        variant.bytesPerWeight = 0.71
        let text = ProfileEncoder.variant(variant)
        #expect(text.contains("quantization: q5_k_m\n"))
        #expect(try ProfileDecoder.decodeVariant(.init(path: "models/m.q5_k_m.yaml", text: text)) == variant)
        let broken = text.replacingOccurrences(of: "quantization: q5_k_m", with: "quantization: q5 k m")
        #expect {
            try ProfileDecoder.decodeVariant(.init(path: "models/m.yaml", text: broken))
        } throws: { error in
            "\(error)".contains("a quantization is a name of 1-32 letters")
        }
    }

    @Test func traceRecordsCarryTheirQuantizationAndOldOnesAreFp16() throws {
        let lines = """
            {"model": "M-1B", "phase": "decode", "input_tokens": 64, "output_tokens": 128, "latency_s": 1.2, "quantization": "Q8_0"}
            {"model": "M-1B", "phase": "decode", "input_tokens": 64, "output_tokens": 128, "latency_s": 2.1}

            """
        let observations = try MeasurementDecoder.decode(Array(lines.utf8), file: "t.jsonl")
        #expect(observations.map(\.quantization.rawValue) == ["q8_0", "fp16"])
        let bad =
            #"{"model": "M-1B", "phase": "decode", "input_tokens": 64, "output_tokens": 1, "latency_s": 1, "quantization": "q 8"}"#
        #expect {
            try MeasurementDecoder.decode(Array((lines + bad + "\n").utf8), file: "t.jsonl")
        } throws: { error in
            "\(error)".contains("quantization") && "\(error)".contains("t.jsonl") && "\(error)".contains("3")
        }
    }

    @Test func aPolicyTakesAnyQuantizationNameAndRefusesABrokenOne() throws {
        let policy = try PolicyDecoder.decode(
            """
            kind: policy
            tasks:
              shelf:
                like: mmlu-redux
                allowed_quantizations: [Q8_0, q4_k_m, F16]
            """,
            file: "p.yaml"
        )
        #expect(policy.tasks["shelf"]?.allowedQuantizations?.map(\.rawValue).sorted() == ["fp16", "q4_k_m", "q8_0"])
        #expect {
            try PolicyDecoder.decode(
                "kind: policy\ntasks:\n  shelf:\n    like: mmlu-redux\n    allowed_quantizations: [q 8]\n",
                file: "p.yaml"
            )
        } throws: { error in
            "\(error)".contains("allowed_quantizations") && "\(error)".contains("a quantization is a name")
        }
    }
}
