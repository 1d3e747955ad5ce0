import ArgumentParser
import EdgePlanCore

struct Budget: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "budget",
        abstract: "The largest output cap (max_tokens) that fits a latency deadline, less the policy's safety margin."
    )

    @Option(help: "Model name.") var model: String
    @Option(help: "Quantization: fp16, awq-w4, q8_0, q4_k_m, ... (as the profile names it).") var quant: String = "fp16"
    @Option(parsing: .unconditional, help: "Prompt tokens.") var input: Int
    @Option(parsing: .unconditional, help: "Deadline with a unit: 250ms, 5s, 2m.") var deadline: String
    @Option(parsing: .unconditional, help: "Parallel samples.") var parallel: Int = 1
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var snapshot: SnapshotOptions

    func validate() throws {
        guard (1...PlanRequest.maxInputTokens).contains(input) else {
            throw ValidationError("--input must be within 1...\(PlanRequest.maxInputTokens), got \(input)")
        }
        guard (1...256).contains(parallel) else {
            throw ValidationError("--parallel must be within 1...256, got \(parallel)")
        }
        _ = try parseSeconds(deadline, "deadline")
        _ = try parseQuantization(quant)
    }

    func run() async throws {
        try await reportingErrors {
            let planner = try snapshot.planner()
            let profile = planner.profile
            let variant = try profile.variant(model: model, quantization: try parseQuantization(quant))
            let seconds = try parseSeconds(deadline, "deadline")
            // As plan does: the deadline less the policy's safety margin. A budget is a hard cap (max_tokens), so no
            // sample runs past it: the bound holds at every percentile, plan's p95 included, not only on the mean.
            let margin = planner.policy.safetyMargin
            let limitS = seconds * (1 - margin)
            let predictor = Predictor(device: profile.device)
            let tokens = predictor.maxOutputTokens(variant, input: input, deadlineS: limitS, parallel: parallel)
            let atCapS = tokens.map {
                predictor.predict(variant, input: input, output: Double($0), parallel: parallel).latencyS
            }
            if json {
                printJSON(
                    .fields([
                        "model": .string(variant.id.model), "quantization": .string(variant.id.quantization.rawValue),
                        "inputTokens": .int(input), "deadlineMs": .number(seconds * 1000), "parallel": .int(parallel),
                        "safetyMargin": .number(margin), "latencyLimitMs": .number(limitS * 1000),
                        "maxOutputTokens": .int(tokens ?? 0),
                        "latencyAtCapMs": atCapS.map { .number($0 * 1000) } ?? .null,
                        "basis": .string(
                            "hard cap: every sample stops at maxOutputTokens, so the bound holds at every percentile"
                        ),
                    ])
                )
            } else if let tokens, let atCapS {
                print(
                    "\(variant.id): at most \(tokens) output tokens x\(parallel) after \(input) input tokens: \(format(atCapS, 3)) s at the cap, within \(format(limitS, 3)) s (\(deadline) less the policy's \(format(margin * 100, 0)) % safety margin)"
                )
                print(
                    "  a hard cap (max_tokens \(tokens)) stops every sample there, so this holds at every percentile, the p\(format(planner.policy.latencyPercentile * 100, 0)) that plan uses included"
                )
            } else {
                print(
                    "\(variant.id): prefill of \(input) tokens alone exceeds \(format(limitS, 3)) s (\(deadline) less the policy's \(format(margin * 100, 0)) % safety margin); no output fits"
                )
            }
            // Like plan: nothing fits the deadline is exit 2.
            if (tokens ?? 0) == 0 { throw ExitStatus.infeasible }
        }
    }
}
