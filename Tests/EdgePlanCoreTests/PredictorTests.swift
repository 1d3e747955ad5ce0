import EdgePlanCore
import Foundation
import Testing

struct PredictorTests {
    let profile = Fixtures.profile
    var predictor: Predictor { Predictor(device: profile.device) }

    @Test func decodeLatencyMatchesOrinMeasurementsWithinThreePointFivePercent() throws {
        let rows = Validator(profile: profile).compare(try Fixtures.observations("orin/decode_parameters.json"))
        let latency = rows.filter { $0.phase == "decode" && $0.metric == "latency" }
        #expect(latency.count == 3)
        for row in latency { #expect(row.mape <= 3.5, "\(row.model) decode MAPE \(row.mape)%") }
    }

    @Test func calibratedPrefillHoldsOverTheWholeRangeWhereThePaperQuadraticDoesNot() throws {
        let rows = Validator(profile: profile).compare(try Fixtures.observations("orin/prefill.json"))
        let prefill = rows.filter { $0.phase == "prefill" && $0.metric == "latency" }
        #expect(prefill.count == 3)
        for row in prefill {
            #expect(row.mape < 10, "\(row.model) calibrated prefill MAPE \(row.mape)%")
            #expect((row.referenceMAPE ?? 0) > 50, "the paper's Table IV quadratic should overpredict long inputs")
        }
        let llama = try profile.variant(model: "DSR1-Llama-8B", quantization: .fp16)
        #expect(abs(llama.prefillLatencyReference!.seconds(input: 1027) - 1.32) < 0.01)
        #expect(abs(llama.prefillLatency.seconds(input: 1027) - 0.99) / 0.99 < 0.1)
    }

    @Test func shippedPrefillCoefficientsAreWhatTheRobustFitProduces() throws {
        let observations = try Fixtures.observations("orin/prefill.json")
        for model in ["DSR1-Qwen-1.5B", "DSR1-Llama-8B", "DSR1-Qwen-14B"] {
            let (fitted, result) = try LatencyFitter.prefill(observations.filter { $0.model == model }, source: "test")
            let shipped = try profile.variant(model: model, quantization: .fp16).prefillLatency
            for input in [128, 1024, 4096] {
                let relative =
                    abs(fitted.seconds(input: input) - shipped.seconds(input: input)) / shipped.seconds(input: input)
                #expect(
                    relative < 0.01,
                    "\(model) at \(input): fit \(fitted.seconds(input: input)) vs shipped \(shipped.seconds(input: input))"
                )
            }
            if model == "DSR1-Llama-8B" {
                #expect(result.rejected >= 1, "the 22 s outlier at 2561 tokens gets no weight")
            }
        }
    }

    @Test func tableXAveragesAreReproducedWithinTenPercent() {
        let checks = Validator(profile: profile).tableChecks().filter { $0.task == "mmlu-redux" }
        #expect(checks.count >= 20)
        for check in checks {
            #expect(
                abs(check.relativeError) < 0.10,
                "\(check.record.variant) \(check.record.mode): \(check.relativeError)"
            )
        }
        let llama = checks.first {
            $0.record.variant.model == "DSR1-Llama-8B" && $0.record.mode == .base
                && $0.record.variant.quantization == .fp16
        }!
        #expect(llama.measuredS == 87.16)
    }

    @Test func budgetIsTheInverseOfThePrediction() throws {
        for variant in profile.variants.values {
            for deadline in [1.0, 5.0, 60.0] {
                guard let tokens = predictor.maxOutputTokens(variant, input: 512, deadlineS: deadline, parallel: 4)
                else {
                    #expect(variant.prefillLatency.seconds(input: 512) > deadline)
                    continue
                }
                #expect(
                    predictor.predict(variant, input: 512, output: Double(tokens), parallel: 4).latencyS <= deadline
                        + 1e-9
                )
                if tokens < variant.contextTokens - 512 {
                    #expect(
                        predictor.predict(variant, input: 512, output: Double(tokens + 1), parallel: 4).latencyS
                            > deadline
                    )
                }
            }
        }
    }

    @Test func parallelScalingFollowsTheMeasuredSlope() throws {
        let qwen = try profile.variant(model: "DSR1-Qwen-14B", quantization: .fp16)
        let one = predictor.predict(qwen, input: 128, output: 128, parallel: 1)
        let many = predictor.predict(qwen, input: 128, output: 128, parallel: 32)
        #expect(abs(many.decodeS / one.decodeS - 58.03 / 24.86) / (58.03 / 24.86) < 0.05)
        #expect(many.decodePowerW > one.decodePowerW)
        #expect(many.memoryGiB > one.memoryGiB)
    }

    @Test func costFollowsSectionIIIB() {
        // 195,624 tokens in 4,358 s using 0.0317 kWh gives $0.302 per million tokens.
        let energyJ = 0.0317 * 3.6e6
        let usd =
            energyJ / 3.6e6 * profile.device.electricityUSDPerKWh + 4358.0 / 3600 * profile.device.hardwareUSDPerHour
        #expect(abs(usd / 195_624 * 1e6 - 0.302) < 0.002)
    }

    @Test func memoryRejectsWhatCannotFit() throws {
        let qwen = try profile.variant(model: "DSR1-Qwen-14B", quantization: .fp16)
        #expect(predictor.predict(qwen, input: 512, output: 512).fits)
        #expect(!predictor.predict(qwen, input: 8192, output: 8192, parallel: 64).fits)
    }

    @Test func everyVariantRespectsTheRooflineBound() {
        for variant in profile.variants.values {
            #expect(
                variant.decodeLatency.nSPerToken >= Roofline.decodeFloorSPerToken(variant, device: profile.device),
                "\(variant.id)"
            )
        }
    }
}
