import ArgumentParser
import EdgePlanCore

struct Budget: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "budget",
        abstract: "The largest output length that fits a latency deadline."
    )

    @Option(help: "Model name.") var model: String
    @Option(help: "fp16 or awq-w4.") var quant: String = "fp16"
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
            let profile = try snapshot.profileSet()
            let variant = try profile.variant(model: model, quantization: try parseQuantization(quant))
            let seconds = try parseSeconds(deadline, "deadline")
            let tokens = Predictor(device: profile.device).maxOutputTokens(
                variant,
                input: input,
                deadlineS: seconds,
                parallel: parallel
            )
            if json {
                printJSON(
                    .fields([
                        "model": .string(variant.id.model), "quantization": .string(variant.id.quantization.rawValue),
                        "inputTokens": .int(input), "deadlineMs": .number(seconds * 1000), "parallel": .int(parallel),
                        "maxOutputTokens": .int(tokens ?? 0),
                    ])
                )
            } else if let tokens {
                print(
                    "\(variant.id): at most \(tokens) output tokens x\(parallel) after \(input) input tokens within \(deadline)"
                )
            } else {
                print("\(variant.id): prefill of \(input) tokens alone exceeds \(deadline); no output fits")
            }
            // Like plan: nothing fits the deadline is exit 2.
            if (tokens ?? 0) == 0 { throw ExitStatus.infeasible }
        }
    }
}
