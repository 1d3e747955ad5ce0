import Foundation

/// The comparison a simulation ends with: per policy, overall and per task class. The same seed, workload and
/// truth give the same bytes.
public enum SimulationReport {
    public static let schemaVersion = 1

    public static func json(_ simulator: Simulator, workload: String, truth: String) -> JSONValue {
        .fields([
            "schemaVersion": .int(schemaVersion), "seed": .int(Int(truncatingIfNeeded: simulator.options.seed)),
            "workload": .string(workload), "truth": .string(truth), "requests": .int(simulator.processed),
            "profile": .string(simulator.profile.device.name), "profileVersion": .string(simulator.profile.version),
            "drift": .array(
                simulator.truth.drift.map { event in
                    .fields([
                        "atS": .number(event.atS), "kind": .string(event.kind.rawValue),
                        "factor": .number(event.factor),
                        "durationS": event.durationS.map(JSONValue.number) ?? .null,
                        "mode": event.mode.map(JSONValue.string) ?? .null,
                    ])
                }
            ),
            "policies": .array(
                simulator.runs.map { run in
                    .fields([
                        "name": .string(run.spec.name), "policyVersion": .string(run.spec.policy.version),
                        "overall": run.overall.json, "recalibrations": .int(run.recalibrations),
                        "classes": .object(run.classes.keys.sorted().map { ($0, run.classes[$0]!.json) }),
                        "learned": .array(
                            run.traces.map { trace in
                                .fields([
                                    "task": .string(trace.taskClass), "model": .string(trace.group.variant.model),
                                    "quantization": .string(trace.group.variant.quantization.rawValue),
                                    "mode": .string(trace.group.mode.rawValue),
                                    "truth": .number(trace.truth), "prior": .number(trace.prior),
                                    "final": trace.points.last.map { .number($0.accuracy) } ?? .null,
                                    "reports": .int(trace.points.last?.reports ?? 0),
                                ])
                            }
                        ),
                    ])
                }
            ),
        ])
    }

    /// A readable table: one block per task class and one overall, a row per policy.
    public static func table(_ simulator: Simulator) -> String {
        var lines = [
            "\(simulator.processed) requests on \(simulator.profile.device.name), seed \(simulator.options.seed)"
                + (simulator.options.overlap ? ", tasks overlapping on shared engines" : "")
        ]
        let overlap = simulator.options.overlap
        let classes = Set(simulator.runs.flatMap { $0.classes.keys }).sorted()
        // The name column fits the longest name (a fixed: baseline's can be long), so the columns stay aligned.
        let width = max(34, (simulator.runs.map(\.spec.name.count).max() ?? 0) + 2)
        let header =
            "  " + "policy".padded(width) + "on time".leftPadded(9) + "accuracy".leftPadded(10)
            + "expected".leftPadded(10) + "regret pts".leftPadded(11)
            + "infeasible".leftPadded(11) + "J/request".leftPadded(11) + "$/Mtok".leftPadded(9)
            + "wait p95 s".leftPadded(12) + (overlap ? "cut".leftPadded(6) + "yielded".leftPadded(9) : "")
        func row(_ name: String, _ tally: SimulationTally) -> String {
            "  " + name.padded(width) + percent(tally.deadlineHitRate).leftPadded(9)
                + percent(tally.realizedAccuracy).leftPadded(10)
                + percent(tally.meanExpectedAccuracy).leftPadded(10)
                + fixed(tally.meanRegret * 100, 2).leftPadded(11)
                + "\(tally.infeasible + tally.expiredInQueue)".leftPadded(11)
                + fixed(tally.requests > 0 ? tally.energyJ / Double(tally.requests) : 0, 1).leftPadded(11)
                + fixed(tally.costUSDPerMTok, 3).leftPadded(9)
                + fixed(tally.waitPercentile(0.95), 1).leftPadded(12)
                + (overlap ? "\(tally.cut)".leftPadded(6) + "\(tally.preempted)".leftPadded(9) : "")
        }
        for name in classes + ["overall"] {
            lines.append("\n\(name):")
            lines.append(header)
            for run in simulator.runs {
                lines.append(
                    row(run.spec.name, name == "overall" ? run.overall : run.classes[name] ?? SimulationTally())
                )
            }
        }
        for run in simulator.runs where !run.traces.isEmpty {
            for trace in run.traces {
                let last = trace.points.last
                lines.append(
                    "\(run.spec.name): learned \(trace.taskClass) \(trace.group): prior \(percent(trace.prior)), truth \(percent(trace.truth)), learned \(last.map { percent($0.accuracy) } ?? "-") from \(last?.reports ?? 0) reports"
                )
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One decimal always (65.0 %, not 65 % beside 65.4 %).
    static func percent(_ value: Double) -> String { "\(fixed(value * 100, 1)) %" }

    /// A fixed number of decimals, with no negative zero (-0.00 is 0.00).
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        let text = String(format: "%.\(decimals)f", value)
        return text.hasPrefix("-") && text.dropFirst().allSatisfy({ $0 == "0" || $0 == "." })
            ? String(text.dropFirst()) : text
    }
}
