import ArgumentParser
import EdgePlanCore
import Foundation

struct Calibrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fit prefill and decode latency models to measured traces, with a hold-out MAPE.")

    @Option(name: .customLong("traces"), parsing: .upToNextOption, help: "Measurement files (as for validate).") var traces: [String]
    @Option(help: "Model to fit, e.g. DSR1-Llama-8B.") var model: String
    @Option(help: "Hold out every n-th observation for testing.") var holdoutEvery: Int = 5
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard !traces.isEmpty else { throw ValidationError("give --traces FILE...") }
        guard (2...100).contains(holdoutEvery) else { throw ValidationError("--holdout-every must be within 2...100") }
    }

    func run() async throws {
        try await reportingErrors {
            var observations: [Observation] = []
            for path in traces {
                guard let data = FileManager.default.contents(atPath: path) else { throw EdgePlanError(.io, "cannot read file", file: path) }
                observations += try MeasurementDecoder.decode(Array(data), file: path).filter { $0.model.lowercased() == model.lowercased() }
            }
            guard !observations.isEmpty else { throw EdgePlanError(.unknownModel, "no observations of model '\(model)' in the given traces") }
            var results: [(String, [(String, Double)], Double, Double, Int)] = []
            for phase in [Observation.Phase.prefill, .decode] {
                let points = observations.filter { $0.phase == phase && $0.latencyS > 0 && $0.batch == 1 && (phase == .prefill || $0.outputTokens > 0) }
                guard points.count >= 6 else { continue }
                let fit = points.enumerated().filter { $0.offset % holdoutEvery != 0 }.map(\.element)
                let holdout = points.enumerated().filter { $0.offset % holdoutEvery == 0 }.map(\.element)
                let predict: (Observation) -> Double
                let coefficients: [(String, Double)]
                let rejected: Int
                switch phase {
                case .prefill:
                    let (model, result) = try LatencyFitter.prefill(fit, source: "fitted")
                    predict = { model.seconds(input: $0.inputTokens) }
                    coefficients = [("a_s_per_token2", model.aSPerToken2), ("b_s_per_token", model.bSPerToken), ("c_s", model.cS)]
                    rejected = result.rejected
                case .decode:
                    let (model, result) = try LatencyFitter.decode(fit, source: "fitted")
                    predict = { model.seconds(input: Double($0.inputTokens), output: Double($0.outputTokens)) }
                    coefficients = [("m_s_per_token2", model.mSPerToken2), ("n_s_per_token", model.nSPerToken)]
                    rejected = result.rejected
                }
                func mape(_ set: [Observation]) -> Double { set.map { abs(predict($0) - $0.latencyS) / $0.latencyS }.reduce(0, +) / Double(set.count) * 100 }
                results.append((phase.rawValue, coefficients, mape(fit), mape(holdout), rejected))
            }
            if json {
                printJSON(.array(results.map { phase, coefficients, fitMAPE, holdoutMAPE, rejected in
                    .fields(["phase": .string(phase), "coefficients": .object(coefficients.map { ($0.0, JSONValue.number($0.1)) }),
                             "fitMapePct": .number(fitMAPE), "holdoutMapePct": .number(holdoutMAPE), "rejectedOutliers": .int(rejected)])
                }))
                return
            }
            for (phase, coefficients, fitMAPE, holdoutMAPE, rejected) in results {
                print("\(model) \(phase): " + coefficients.map { "\($0.0)=\(String(format: "%.6g", $0.1))" }.joined(separator: " "))
                print(String(format: "  MAPE fit %.2f%%, hold-out %.2f%%, %d outliers rejected", fitMAPE, holdoutMAPE, rejected))
            }
        }
    }
}
