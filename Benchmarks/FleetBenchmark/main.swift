import EdgePlanCore
import EdgePlanDaemon
import EdgePlanFleet
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Generated load on one PostgreSQL: `robots` robots (each its own role) upload `runs` runs each, through the upload
/// the sync service uses, over `connections` connections at once; then the aggregate pools them. Prints the upload
/// rate, the aggregate's time and this process's peak memory.
///
/// Usage: FleetBenchmark HOST PORT OWNER OWNER_PASSWORD_FILE ROBOTS RUNS [CONNECTIONS] [PREFIX]
@main
struct FleetBenchmark {
    static func main() async throws { try await run() }

    nonisolated static func run() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 7, let port = Int(arguments[2]), let robots = Int(arguments[5]),
            let runs = Int(arguments[6])
        else {
            FileHandle.standardError.write(
                Data(
                    "usage: FleetBenchmark HOST PORT OWNER OWNER_PASSWORD_FILE ROBOTS RUNS [CONNECTIONS] [PREFIX]\n"
                        .utf8
                )
            )
            exit(64)
        }
        let connections = arguments.count > 7 ? Int(arguments[7]) ?? 8 : 8
        let prefix = arguments.count > 8 ? arguments[8] : "bench"
        let logger = {
            var logger = Logger(label: "fleet-benchmark")
            logger.logLevel = .error
            return logger
        }()
        let ownerPassword = try FileText.text(arguments[4]).trimmingCharacters(in: .whitespacesAndNewlines)
        let owner = FleetConnection(
            host: arguments[1],
            port: port,
            database: "edgeplan_fleet",
            user: arguments[3],
            password: ownerPassword,
            tls: "disable"
        )
        _ = try await FleetStore.with(owner, logger: logger) { try await $0.migrate() }
        let names = (0..<robots).map { "\(prefix)-\($0)" }
        let addStart = ContinuousClock.now
        try await FleetStore.with(owner, logger: logger) { fleet in
            for name in names {
                try await fleet.addRobot(name, password: "\(name)-pw", deviceClass: "jetson-agx-orin-64gb", label: nil)
            }
        }
        let addSeconds = seconds(ContinuousClock.now - addStart)

        // Runs as a robot's store holds them: latency near its prediction, each robot with its own effect.
        @Sendable func rows(robot: Int, from: Int, count: Int) -> [ObservationStore.UploadRow] {
            let models = ["DSR1-Qwen-1.5B", "DSR1-Llama-8B", "Qwen2.5-7B-it"]
            return (from..<(from + count)).map { seq in
                let output = 64 + (seq * 37 + robot * 11) % 900
                let predicted = 0.5 + Double(output) * 0.02
                let effect = 1 + Double(robot % 7) * 0.01
                return ObservationStore.UploadRow(
                    seq: Int64(seq + 1),
                    values: [
                        "time": .real(1_796_000_000 + Double(seq)), "requestId": .text("ep-\(seq)"),
                        "model": .text(models[seq % models.count]), "quantization": .text("fp16"),
                        "mode": .text("hard"), "parallel": .integer(4), "inputTokens": .integer(256),
                        "outputTokens": .integer(Int64(output)),
                        "latencyS": .real(predicted * effect * (0.97 + Double(seq % 7) * 0.01)),
                        "energyJ": .real(predicted * 20), "energySource": .text("rails"), "peer": .integer(1000),
                        "predictedS": .real(predicted),
                    ]
                )
            }
        }
        let batch = 500
        let uploadStart = ContinuousClock.now
        @Sendable func upload(_ index: Int) async throws -> Int {
            let name = names[index]
            var robotConnection = owner
            robotConnection.user = name
            robotConnection.password = "\(name)-pw"
            return try await FleetStore.with(robotConnection, logger: logger) { fleet in
                var sent = 0
                var from = 0
                while from < runs {
                    let chunk = rows(robot: index, from: from, count: min(batch, runs - from))
                    sent += try await fleet.upload(
                        runs: chunk,
                        deviceClass: "jetson-agx-orin-64gb",
                        profileVersion: "bench",
                        powerMode: "MAXN",
                        predictedS: { $0.values["predictedS"]?.double }
                    )
                    from += batch
                }
                return sent
            }
        }
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            var next = 0
            while next < min(connections, robots) {
                let index = next
                group.addTask { try await upload(index) }
                next += 1
            }
            var total = 0
            while let sent = try await group.next() {
                total += sent
                if next < robots {
                    let index = next
                    group.addTask { try await upload(index) }
                    next += 1
                }
            }
            return total
        }
        precondition(total == robots * runs, "stored \(total) of \(robots * runs)")
        let uploadSeconds = seconds(ContinuousClock.now - uploadStart)

        let aggregateStart = ContinuousClock.now
        let (ratios, calibrations, held) = try await FleetStore.with(owner, logger: logger) { fleet in
            let ratios = try await fleet.robotRatios()
            let calibrations = FleetPooling.calibrations(ratios)
            let body = FleetPooling.body(calibrations: calibrations, accuracy: [])
            _ = try await fleet.writeVersion(body: body.serialized(), changes: #"{"changed": []}"#)
            return (ratios.count, calibrations.count, try await fleet.runCount())
        }
        let aggregateSeconds = seconds(ContinuousClock.now - aggregateStart)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let rows = robots * runs
        print(
            "\(robots) robots x \(runs) runs = \(rows) rows (fleet holds \(held)): roles added in \(format(addSeconds)) s; "
                + "upload \(format(uploadSeconds)) s = \(Int(Double(rows) / uploadSeconds)) rows/s over \(connections) connections; "
                + "aggregate \(format(aggregateSeconds)) s (\(ratios) robot medians, \(calibrations) calibrations); "
                + "peak memory of this process \(usage.ru_maxrss / 1024) MiB"
        )
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }
}
