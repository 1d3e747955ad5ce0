import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract:
            "Follow a running daemon: decisions, reports, recalibrations, rollbacks, drift and reloads as they happen."
    )
    @OptionGroup var daemon: DaemonSocket
    @Option(
        help:
            "Comma-separated kinds: \(EventStream.Kind.allCases.map(\.rawValue).joined(separator: ", ")) (default: all)."
    )
    var kinds: String?
    @Option(parsing: .unconditional, help: "Stop after this many events.") var count: Int?
    @Flag(help: "Print one JSON object per line.") var json = false

    func validate() throws {
        for kind in kindList ?? [] where EventStream.Kind(rawValue: kind) == nil {
            throw ValidationError(
                "unknown kind '\(kind)'; use \(EventStream.Kind.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    private var kindList: [String]? {
        kinds.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
    }

    func run() async throws {
        try await reportingErrors {
            let client = try VarlinkClient(socketPath: daemon.socket)
            try client.send(
                "io.edgeplan.Planner.Watch",
                .fields(["kinds": kindList.map { .array($0.map(JSONValue.string)) } ?? .null]),
                more: true
            )
            var seen = 0
            while true {
                let reply = try client.receive()
                if let error = reply["error"]?.stringValue {
                    throw EdgePlanError.invalidInput(
                        "daemon answered \(error): \(reply["parameters"]?.serialized() ?? "")"
                    )
                }
                guard let event = reply["parameters"] else { continue }
                if json, case let .object(pairs) = event {
                    print(JSONValue.object([("schemaVersion", .int(jsonSchemaVersion))] + pairs).serialized())
                } else {
                    print(Self.line(event))
                }
                fflush(nil)
                guard event["kind"]?.stringValue != "watching" else { continue }
                seen += 1
                if let count, seen >= count { return }
                if reply["continues"]?.boolValue != true { return }
            }
        }
    }

    /// One readable line per event.
    static func line(_ event: JSONValue) -> String {
        let time = Date(timeIntervalSince1970: event["time"]?.doubleValue ?? 0).formatted(
            .iso8601.time(includingFractionalSeconds: true)
        )
        let kind = event["kind"]?.stringValue ?? "?"
        let fields = event["event"] ?? .object([])
        func text(_ key: String) -> String { fields[key]?.stringValue ?? fields[key].map { $0.serialized() } ?? "-" }
        func number(_ value: JSONValue?, _ digits: Int = 0, scale: Double = 1) -> String {
            value?.doubleValue.map { format($0 * scale, digits) } ?? "-"
        }
        var line = "\(time) \(kind)"
        switch kind {
        case "watching": line += " \(fields["kinds"].map { $0.serialized() } ?? "")"
        case "decision":
            line += " \(text("requestId")) \(text("task")): \(text("model")) \(text("quantization")) \(text("mode"))"
            let predicted = fields["predicted"]
            line +=
                " parallel \(text("parallel")), p\(number(predicted?["percentile"], scale: 100)) \(number(predicted?["latencyPercentileMs"])) ms"
            line +=
                ", accuracy \(number(predicted?["accuracy"], 1, scale: 100)) % (\(predicted?["accuracySource"]?.stringValue ?? "-"))"
            if fields["explored"]?.boolValue == true { line += ", explored" }
        case "infeasible": line += " \(text("requestId")) \(text("task")): \(text("message"))"
        case "report":
            line +=
                " \(text("requestId")) \(text("model")): \(number(fields["latencyMs"])) ms against \(number(fields["predictedLatencyMs"])) ms predicted; \(text("learning"))"
        case "recalibration", "rollback": line += " \(text("model")) \(text("quantization")): \(text("reason"))"
        case "drift": line += " \(text("model")) \(text("quantization")): x\(number(fields["ratio"], 3))"
        case "reload":
            line +=
                fields["ok"]?.boolValue == true
                ? " policy \(text("policyVersion")), profile \(text("profileVersion"))" : " failed: \(text("message"))"
        default: line += " \(fields.serialized())"
        }
        if let dropped = event["dropped"]?.intValue, dropped > 0 {
            line += " (\(dropped) events dropped before this one)"
        }
        return line
    }
}
