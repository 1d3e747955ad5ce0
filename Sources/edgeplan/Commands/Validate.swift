import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Compare a profile's predictions with measured traces (MAPE per model and phase)."
    )

    @Option(
        name: .customLong("measurements"),
        parsing: .upToNextOption,
        help: "Measurement files: the artifact's prefill.json / decode_parameters.json, or JSON-lines traces."
    )
    var measurements: [String] = []
    @Flag(help: "Also check the published mean latencies of the accuracy tables (Tables X, XI).") var tables = false
    @Flag(
        help:
            "Leave-one-out over the accuracy tables: predict each measured cell from the others as the planner would, print the error in points per model and mode."
    ) var accuracy = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var snapshot: SnapshotOptions

    func validate() throws {
        if measurements.isEmpty && !tables && !accuracy {
            throw ValidationError("give --measurements FILE..., --tables and/or --accuracy")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let profile = try snapshot.profileSet()
            if accuracy { try printLeaveOneOut(profile) }
            if measurements.isEmpty && !tables { return }
            var observations: [Observation] = []
            for path in measurements {
                observations += try MeasurementDecoder.decode(Array(try FileText.data(path)), file: path)
            }
            let validator = Validator(profile: profile)
            let rows = validator.compare(observations)
            let checks = tables ? validator.tableChecks() : []
            if json {
                printJSON(
                    .fields([
                        "profile": .string(profile.device.name),
                        "rows": .array(
                            rows.map { row in
                                .fields([
                                    "model": .string(row.model), "phase": .string(row.phase),
                                    "metric": .string(row.metric), "count": .int(row.count),
                                    "mapePct": .number(row.mape),
                                    "referenceMapePct": row.referenceMAPE.map(JSONValue.number) ?? .null,
                                    "skipped": .int(row.skipped),
                                ])
                            }
                        ),
                        "tableChecks": .array(
                            checks.map { check in
                                .fields([
                                    "task": .string(check.task), "model": .string(check.record.variant.model),
                                    "quantization": .string(check.record.variant.quantization.rawValue),
                                    "mode": .string(check.record.mode.rawValue),
                                    "tokenBudget": check.record.budgetTokens.map(JSONValue.int) ?? .null,
                                    "meanOutputTokens": .number(check.record.meanOutputTokens),
                                    "inputTokens": .int(check.inputTokens),
                                    "predictedS": .number(check.predictedS), "measuredS": .number(check.measuredS),
                                    "errorPct": .number(check.relativeError * 100),
                                ])
                            }
                        ),
                    ])
                )
                return
            }
            if !rows.isEmpty {
                print(
                    "model".padded(27) + "phase".padded(9) + "metric".padded(9) + "     n" + "      MAPE"
                        + "   paper coeffs"
                )
                for row in rows {
                    let reference = row.referenceMAPE.map { String(format: "%13.2f%%", $0) } ?? ""
                    print(
                        row.model.padded(27) + row.phase.padded(9) + row.metric.padded(9)
                            + String(format: "%6d %8.2f%% ", row.count, row.mape) + reference
                            + (row.skipped > 0 ? "  (\(row.skipped) runs without a duration skipped)" : "")
                    )
                }
            } else if !measurements.isEmpty {
                print("no measured model matches a variant of profile \(profile.device.name)")
            }
            if !checks.isEmpty {
                print(
                    "\npublished mean latency per question vs prediction at the task's typical input (\(checks.first!.inputTokens) tokens):"
                )
                for check in checks {
                    let r = check.record
                    let name =
                        "\(r.variant.model) \(r.variant.quantization.rawValue) \(r.mode.rawValue)\(r.budgetTokens.map { " \($0)" } ?? "")"
                    print(
                        "  " + name.padded(35)
                            + String(
                                format: "%8.1f tok  measured %8.2f s  predicted %8.2f s  %+6.1f%%",
                                r.meanOutputTokens,
                                check.measuredS,
                                check.predictedS,
                                check.relativeError * 100
                            )
                    )
                }
            }
        }
    }
}

extension Validate {
    func printLeaveOneOut(_ profile: ProfileSet) throws {
        let cells = AccuracyLeaveOneOut.run(profile: profile)
        let summary = AccuracyLeaveOneOut.summarize(cells)
        let errors = cells.compactMap(\.errorPoints)
        let overall = errors.isEmpty ? nil : errors.reduce(0, +) / Double(errors.count)
        if json {
            printJSON(
                .fields([
                    "profile": .string(profile.device.name),
                    "meanAbsoluteErrorPoints": overall.map(JSONValue.number) ?? .null,
                    "predicted": .int(errors.count), "notPredicted": .int(cells.count - errors.count),
                    "covered": .int(cells.compactMap(\.covered).filter { $0 }.count),
                    "byModelAndMode": .array(
                        summary.map { row in
                            .fields([
                                "model": .string(row.model), "mode": .string(row.mode.rawValue),
                                "predicted": .int(row.predicted),
                                "notPredicted": .int(row.notPredicted),
                                "meanAbsoluteErrorPoints": row.meanAbsoluteErrorPoints.map(JSONValue.number) ?? .null,
                                "covered": .int(row.covered),
                            ])
                        }
                    ),
                    "cells": .array(
                        cells.map { cell in
                            .fields([
                                "task": .string(cell.task), "model": .string(cell.record.variant.model),
                                "quantization": .string(cell.record.variant.quantization.rawValue),
                                "mode": .string(cell.record.mode.rawValue),
                                "tokenBudget": cell.record.budgetTokens.map(JSONValue.int) ?? .null,
                                "measured": .number(cell.record.accuracy),
                                "predicted": cell.predicted.map { .number($0.accuracy) } ?? .null,
                                "source": cell.predicted.map { .string($0.source.rawValue) } ?? .null,
                                "errorPoints": cell.errorPoints.map(JSONValue.number) ?? .null,
                            ])
                        }
                    ),
                ])
            )
            return
        }
        print("accuracy leave-one-out: each measured cell predicted from the rest, as the planner would")
        print(
            "  " + "model".padded(18) + "mode".padded(14) + "predicted".padded(11) + "not offered".padded(13)
                + "MAE (points)".padded(14) + "inside 80 % interval"
        )
        for row in summary {
            print(
                "  " + row.model.padded(18) + row.mode.rawValue.padded(14) + "\(row.predicted)".padded(11)
                    + "\(row.notPredicted)".padded(13)
                    + (row.meanAbsoluteErrorPoints.map { format($0, 2) } ?? "-").padded(14)
                    + (row.predicted > 0 ? "\(row.covered)/\(row.predicted)" : "-")
            )
        }
        for cell in cells where cell.predicted != nil {
            let r = cell.record
            print(
                "    \(cell.task) \(r.variant) \(r.mode.rawValue) \(r.budgetTokens.map(String.init) ?? ""): measured \(format(r.accuracy * 100, 1)) %, predicted \(format(cell.predicted!.accuracy * 100, 1)) % (\(cell.predicted!.source.rawValue), \(format(cell.predicted!.low * 100, 1))–\(format(cell.predicted!.high * 100, 1)) %)"
            )
        }
        print(
            "overall: \(errors.count) cells predicted, mean absolute error \(overall.map { format($0, 2) } ?? "-") points; \(cells.count - errors.count) cells not offered by the planner without them"
        )
    }
}
