import EdgePlanCore
import EdgePlanDaemon
import EdgePlanFleet
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Generated load on one PostgreSQL: `robots` robots (each its own role) upload `runs` runs each, and an outcome for
/// every tenth run (four samples each), through the upload the sync service uses, over `connections` connections at
/// once; then `fleet aggregate`'s pooling runs on them all. Prints the upload rate, the aggregate's time and this
/// process's peak memory. With MONTHS, each robot's rows are spread over that many months up to now, and the
/// aggregate runs twice: over everything, and over the last 30 days (the months it spans only).
///
/// Usage: FleetBenchmark HOST PORT OWNER OWNER_PASSWORD_FILE ROBOTS RUNS [CONNECTIONS] [PREFIX] [MONTHS]
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
                    "usage: FleetBenchmark HOST PORT OWNER OWNER_PASSWORD_FILE ROBOTS RUNS [CONNECTIONS] [PREFIX] [MONTHS]\n"
                        .utf8
                )
            )
            exit(64)
        }
        let connections = arguments.count > 7 ? Int(arguments[7]) ?? 8 : 8
        let prefix = arguments.count > 8 ? arguments[8] : "bench"
        let months = arguments.count > 9 ? max(1, Int(arguments[9]) ?? 1) : 1
        // Row i of n is at start + i/n of the span, which ends now.
        let span = Double(months) * 30 * 86_400
        let start = Date().timeIntervalSince1970 - span
        @Sendable func time(_ index: Int, of count: Int) -> Double {
            start + span * Double(index) / Double(max(count, 1))
        }
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
        _ = try await FleetStore.with(owner, logger: logger) { fleet in
            _ = try await fleet.migrate()
            return try await fleet.ensurePartitions(monthsBack: months + 1)
        }
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
                        "time": .real(time(seq, of: runs)), "requestId": .text("ep-\(seq)"),
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
        // Outcomes, one for every tenth run: four task classes, the three models, right about 60 % of the time.
        @Sendable func outcomes(robot: Int, from: Int, count: Int) -> [ObservationStore.UploadRow] {
            let models = ["DSR1-Qwen-1.5B", "DSR1-Llama-8B", "Qwen2.5-7B-it"]
            let tasks = ["mmlu-redux", "natural-plan", "math500", "grasp-plan"]
            return (from..<(from + count)).map { seq in
                let samples = (0..<4).map { 64 + (seq * 53 + robot * 7 + $0 * 131) % 400 }
                return ObservationStore.UploadRow(
                    seq: Int64(seq + 1),
                    values: [
                        "time": .real(time(seq, of: runs / 10)), "peer": .integer(1000),
                        "taskClass": .text(tasks[seq % tasks.count]), "model": .text(models[seq / 4 % models.count]),
                        "quantization": .text("fp16"), "mode": .text("hard"), "budgetTokens": .integer(512),
                        "capped": .integer(1), "parallel": .integer(4),
                        "correct": .integer((seq * 7 + robot) % 10 < 6 ? 1 : 0),
                        "sampleOutputTokens": .text(samples.map(String.init).joined(separator: ",")),
                    ]
                )
            }
        }
        let outcomesEach = runs / 10
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
                from = 0
                while from < outcomesEach {
                    sent += try await fleet.upload(
                        outcomes: outcomes(robot: index, from: from, count: min(batch, outcomesEach - from)),
                        profileVersion: "bench"
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
        precondition(total == robots * (runs + outcomesEach), "stored \(total) of \(robots * (runs + outcomesEach))")
        let uploadSeconds = seconds(ContinuousClock.now - uploadStart)

        let aggregateStart = ContinuousClock.now
        let aggregate = try await FleetStore.with(owner, logger: logger) { try await $0.aggregate() }
        let aggregateSeconds = seconds(ContinuousClock.now - aggregateStart)
        let windowStart = ContinuousClock.now
        let window =
            months > 1
            ? try await FleetStore.with(owner, logger: logger) {
                try await $0.aggregate(since: Date().timeIntervalSince1970 - 30 * 86_400)
            } : nil
        let windowSeconds = seconds(ContinuousClock.now - windowStart)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let rows = robots * (runs + outcomesEach)
        let calibrations = aggregate.body["calibrations"]?.arrayValue?.count ?? 0
        let groups = (
            aggregate.body["accuracy"]?.arrayValue?.count ?? 0, aggregate.body["lengths"]?.arrayValue?.count ?? 0
        )
        print(
            "\(robots) robots x (\(runs) runs + \(outcomesEach) outcomes) = \(rows) rows (fleet holds \(aggregate.runs) runs): "
                + "roles added in \(format(addSeconds)) s; "
                + "upload \(format(uploadSeconds)) s = \(Int(Double(rows) / uploadSeconds)) rows/s over \(connections) connections; "
                + "aggregate \(format(aggregateSeconds)) s (\(aggregate.robotMedians) robot medians, \(aggregate.tallies) tallies, "
                + "\(aggregate.lengthSummaries) length summaries -> \(calibrations) calibrations, \(groups.0) accuracy and "
                + "\(groups.1) length groups, a view for each of \(aggregate.views) robots); peak memory of this process \(usage.ru_maxrss / 1024) MiB"
        )
        if let window {
            print(
                "rows over \(months) months; aggregate of the last 30 days: \(format(windowSeconds)) s for \(window.runs) runs "
                    + "(all \(months) months: \(format(aggregateSeconds)) s for \(aggregate.runs))"
            )
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }
}
