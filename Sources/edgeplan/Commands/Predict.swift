import ArgumentParser
import EdgePlanCore

struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Predict latency, power, energy, memory and cost of one configuration."
    )

    @Option(help: "Model name, e.g. DSR1-Llama-8B.") var model: String
    @Option(help: "fp16 or awq-w4.") var quant: String = "fp16"
    @Option(parsing: .unconditional, help: "Prompt tokens.") var input: Int
    @Option(parsing: .unconditional, help: "Output tokens per sample.") var output: Int
    @Option(parsing: .unconditional, help: "Parallel samples (majority vote).") var parallel: Int = 1
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var snapshot: SnapshotOptions

    func validate() throws {
        guard (1...PlanRequest.maxInputTokens).contains(input) else {
            throw ValidationError("--input must be within 1...\(PlanRequest.maxInputTokens), got \(input)")
        }
        guard (0...1_000_000).contains(output) else {
            throw ValidationError("--output must be within 0...1000000, got \(output)")
        }
        guard (1...256).contains(parallel) else {
            throw ValidationError("--parallel must be within 1...256, got \(parallel)")
        }
        _ = try parseQuantization(quant)
    }

    func run() async throws {
        try await reportingErrors {
            let profile = try snapshot.profileSet()
            let variant = try profile.variant(model: model, quantization: try parseQuantization(quant))
            let prediction = Predictor(device: profile.device).predict(
                variant,
                input: input,
                output: Double(output),
                parallel: parallel
            )
            if json {
                printJSON(prediction.json)
                return
            }
            print(
                "\(variant.id) on \(profile.device.displayName): \(input) in, \(output) out x\(parallel) (\(variant.calibration.rawValue))"
            )
            print(
                "  prefill   \(format(prediction.prefillS * 1000, 1)) ms  at \(format(prediction.prefillPowerW, 1)) W  = \(format(prediction.prefillEnergyJ, 2)) J"
            )
            print(
                "  decode    \(format(prediction.decodeS * 1000, 1)) ms  at \(format(prediction.decodePowerW, 1)) W  = \(format(prediction.decodeEnergyJ, 2)) J"
            )
            print("  total     \(format(prediction.latencyS * 1000, 1)) ms, \(format(prediction.energyJ, 2)) J")
            print(
                "  memory    \(format(prediction.memoryGiB, 2)) GiB of \(profile.device.usableMemoryGiB) GiB usable: \(prediction.fits ? "fits" : "DOES NOT FIT")"
            )
            print("  cost      $\(format(prediction.costUSDPerMTok, 4)) per million tokens")
        }
    }
}
