import ArgumentParser
import EdgePlanCore
import Foundation

struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Predict latency, power, energy, memory and cost of one configuration.",
        discussion: """
            With --beside, the latency of the request sent while that many sequences of another request already decode \
            on the engine (its concurrency curve). With --held-out FILE, every request of a file of measured requests \
            (JSON lines: model, input, output, parallel, beside, latency_s) is predicted, and the table, its MAPE by k \
            and by sequences beside, is printed.
            """
    )

    @Option(help: "Model name, e.g. DSR1-Llama-8B.") var model: String?
    @Option(help: "Quantization: fp16, awq-w4, q8_0, q4_k_m, ... (as the profile names it).") var quant: String = "fp16"
    @Option(parsing: .unconditional, help: "Prompt tokens.") var input: Int?
    @Option(parsing: .unconditional, help: "Output tokens per sample.") var output: Int?
    @Option(parsing: .unconditional, help: "Parallel samples (majority vote).") var parallel: Int = 1
    @Option(parsing: .unconditional, help: "Sequences of other requests already decoding on the engine.")
    var beside: Int = 0
    @Option(help: "JSON lines of measured requests to predict and score.") var heldOut: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var snapshot: SnapshotOptions

    func validate() throws {
        guard (0...1024).contains(beside) else {
            throw ValidationError("--beside must be within 0...1024, got \(beside)")
        }
        if heldOut != nil {
            guard model == nil, input == nil, output == nil else {
                throw ValidationError(
                    "--held-out reads the requests from its file: leave out --model, --input and --output"
                )
            }
            return
        }
        guard model != nil else { throw ValidationError("--model is required (or --held-out FILE)") }
        guard let input else { throw ValidationError("--input is required") }
        guard let output else { throw ValidationError("--output is required") }
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
            if let heldOut {
                try score(HeldOutTable.parse(try readText(heldOut), file: heldOut), on: profile)
                return
            }
            let (model, input, output) = (model ?? "", input ?? 1, output ?? 0)
            let variant = try profile.variant(model: model, quantization: try parseQuantization(quant))
            let predictor = Predictor(device: profile.device)
            var prediction = predictor.predict(variant, input: input, output: Double(output), parallel: parallel)
            if beside > 0 {
                let curve = variant.engineCurve
                let busyS = predictor.latencyS(
                    variant,
                    curve: curve,
                    input: input,
                    output: Double(output),
                    parallel: parallel,
                    beside: beside
                )
                prediction.decodeS = max(0, busyS - prediction.prefillS)
                prediction.decodeEnergyJ = prediction.decodePowerW * prediction.decodeS
            }
            if json {
                var value = prediction.json
                if beside > 0, case let .object(pairs) = value {
                    value = .object(pairs + [("beside", .int(beside))])
                }
                printJSON(value)
                return
            }
            if beside > 0 {
                print(
                    "beside \(beside) running sequence\(beside == 1 ? "" : "s") of other requests (modeled: step factors from \(variant.engineCurve.source)):"
                )
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

    /// The held-out table: each request measured and predicted, and the MAPE by k and by sequences beside.
    func score(_ table: HeldOutTable, on profile: ProfileSet) throws {
        let scored = try table.scored(on: profile)
        let byK = Dictionary(grouping: scored, by: \.row.parallel)
        let byBeside = Dictionary(grouping: scored, by: \.row.beside)
        if json {
            printJSON(
                .fields([
                    "rows": .array(
                        scored.map { item in
                            .fields([
                                "model": .string(item.row.model), "input": .int(item.row.input),
                                "output": .int(item.row.output), "parallel": .int(item.row.parallel),
                                "beside": .int(item.row.beside), "measuredS": .number(item.row.latencyS),
                                "predictedS": .number(item.predictedS), "errorPct": .number(item.errorPct),
                                "extrapolated": .bool(item.extrapolated), "source": .string(item.source),
                            ])
                        }
                    ),
                    "mapePct": HeldOutTable.mape(scored).map(JSONValue.number) ?? .null,
                    "mapePctByParallel": .object(
                        byK.keys.sorted().map { ("\($0)", .number(HeldOutTable.mape(byK[$0]!) ?? 0)) }
                    ),
                    "mapePctByBeside": .object(
                        byBeside.keys.sorted().map { ("\($0)", .number(HeldOutTable.mape(byBeside[$0]!) ?? 0)) }
                    ),
                ])
            )
            return
        }
        print("model                      input  output   k  beside  measured s  predicted s  error %")
        for item in scored {
            print(
                item.row.model.padding(toLength: 25, withPad: " ", startingAt: 0) + " "
                    + String(item.row.input).leftPadded(6) + "  " + String(item.row.output).leftPadded(6) + "  "
                    + String(item.row.parallel).leftPadded(2) + "  " + String(item.row.beside).leftPadded(6) + "  "
                    + format(item.row.latencyS, 3).leftPadded(10) + "  " + format(item.predictedS, 3).leftPadded(11)
                    + "  " + format(item.errorPct, 1).leftPadded(7) + (item.extrapolated ? "  (past the curve)" : "")
            )
        }
        let sources = Set(scored.map(\.source)).sorted().joined(separator: "; ")
        print("step factors from: \(sources)")
        print(
            "MAPE by k: "
                + byK.keys.sorted().map { "k=\($0) \(format(HeldOutTable.mape(byK[$0]!) ?? 0, 1)) %" }
                .joined(separator: ", ")
        )
        print(
            "MAPE by sequences beside: "
                + byBeside.keys.sorted().map { "\($0) \(format(HeldOutTable.mape(byBeside[$0]!) ?? 0, 1)) %" }
                .joined(separator: ", ")
        )
        print("MAPE, all \(scored.count) requests: \(format(HeldOutTable.mape(scored) ?? 0, 1)) %")
    }
}
