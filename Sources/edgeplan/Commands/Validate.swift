import ArgumentParser
import EdgePlanCore
import Foundation

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compare a profile's predictions with measured traces (MAPE per model and phase).")

    @Option(name: .customLong("measurements"), parsing: .upToNextOption, help: "Measurement files: the artifact's prefill.json / decode_parameters.json, or JSON-lines traces.")
    var measurements: [String] = []
    @Flag(help: "Also check the published mean latencies of the accuracy tables (Tables X, XI).") var tables = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var snapshot: SnapshotOptions

    func validate() throws {
        if measurements.isEmpty && !tables { throw ValidationError("give --measurements FILE... and/or --tables") }
    }

    func run() async throws {
        try await reportingErrors {
            let profile = try snapshot.profileSet()
            var observations: [Observation] = []
            for path in measurements {
                guard let data = FileManager.default.contents(atPath: path) else { throw EdgePlanError(.io, "cannot read file", file: path) }
                observations += try MeasurementDecoder.decode(Array(data), file: path)
            }
            let validator = Validator(profile: profile)
            let rows = validator.compare(observations)
            let checks = tables ? validator.tableChecks() : []
            if json {
                printJSON(.fields([
                    "profile": .string(profile.device.name),
                    "rows": .array(rows.map { row in .fields([
                        "model": .string(row.model), "phase": .string(row.phase), "metric": .string(row.metric), "count": .int(row.count),
                        "mapePct": .number(row.mape), "referenceMapePct": row.referenceMAPE.map(JSONValue.number) ?? .null, "skipped": .int(row.skipped)]) }),
                    "tableChecks": .array(checks.map { check in .fields([
                        "task": .string(check.task), "model": .string(check.record.variant.model), "quantization": .string(check.record.variant.quantization.rawValue),
                        "mode": .string(check.record.mode.rawValue), "tokenBudget": check.record.budgetTokens.map(JSONValue.int) ?? .null,
                        "meanOutputTokens": .number(check.record.meanOutputTokens), "inputTokens": .int(check.inputTokens),
                        "predictedS": .number(check.predictedS), "measuredS": .number(check.measuredS), "errorPct": .number(check.relativeError * 100)]) }),
                ]))
                return
            }
            if !rows.isEmpty {
                print("model".padded(27) + "phase".padded(9) + "metric".padded(9) + "     n" + "      MAPE" + "   paper coeffs")
                for row in rows {
                    let reference = row.referenceMAPE.map { String(format: "%13.2f%%", $0) } ?? ""
                    print(row.model.padded(27) + row.phase.padded(9) + row.metric.padded(9) + String(format: "%6d %8.2f%% ", row.count, row.mape) + reference
                          + (row.skipped > 0 ? "  (\(row.skipped) runs without a duration skipped)" : ""))
                }
            } else if !measurements.isEmpty {
                print("no measured model matches a variant of profile \(profile.device.name)")
            }
            if !checks.isEmpty {
                print("\npublished mean latency per question vs prediction at the task's typical input (\(checks.first!.inputTokens) tokens):")
                for check in checks {
                    let r = check.record
                    let name = "\(r.variant.model) \(r.variant.quantization.rawValue) \(r.mode.rawValue)\(r.budgetTokens.map { " \($0)" } ?? "")"
                    print("  " + name.padded(35) + String(format: "%8.1f tok  measured %8.2f s  predicted %8.2f s  %+6.1f%%", r.meanOutputTokens, check.measuredS, check.predictedS, check.relativeError * 100))
                }
            }
        }
    }
}
