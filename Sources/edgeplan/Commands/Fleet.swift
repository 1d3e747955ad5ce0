import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import EdgePlanFleet
import Foundation
import Logging

struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Share runs and what was learned across robots, through PostgreSQL.",
        subcommands: [Init.self, AddRobot.self, Sync.self, Aggregate.self, FleetStatus.self, Prune.self]
    )

    /// How an operator reaches the fleet store (init, add-robot, aggregate, status).
    struct Connection: ParsableArguments {
        @Option(help: "Host, or the directory holding PostgreSQL's Unix socket.") var host: String = "/run/postgresql"
        @Option(help: "Port.") var port: Int = 5432
        @Option(help: "Database.") var database: String = "edgeplan_fleet"
        @Option(help: "Role to connect as (the fleet's owner for init, add-robot and aggregate).") var user: String
        @Option(help: "File holding the role's password (none: the server's local trust or peer rule).")
        var passwordFile: String?
        @Option(help: "TLS on TCP: prefer, require or disable.") var tls: String = "prefer"
        @Option(help: "PEM file of the authorities the server's certificate must chain to (default: the system's).")
        var tlsCaFile: String?

        func validate() throws {
            guard ["prefer", "require", "disable"].contains(tls) else {
                throw ValidationError("unknown TLS mode '\(tls)' for --tls; use prefer, require or disable")
            }
        }

        func connection() throws -> FleetConnection {
            FleetConnection(
                host: host,
                port: port,
                database: database,
                user: user,
                password: try passwordFile.map {
                    try FileText.text($0, what: "password file").trimmingCharacters(in: .whitespacesAndNewlines)
                },
                tls: tls,
                tlsCAFile: tlsCaFile
            )
        }
    }

    static var logger: Logger {
        var logger = Logger(label: "edgeplan.fleet")
        logger.logLevel = .warning
        return logger
    }

    /// Runs a fleet command, printing a fleet error plainly (exit 74: the store could not be used as asked).
    static func reporting(_ body: () async throws -> Void) async throws {
        try await reportingErrors {
            do { try await body() } catch let error as FleetError {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitStatus.ioError
            }
        }
    }

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or upgrade the fleet's tables, roles and row-level security (as the database's owner)."
        )
        @OptionGroup var store: Connection
        @Option(help: "Months of past partitions to make, for robots that will upload a backlog.")
        var monthsBack: Int = 1
        /// Stops at an older schema: how the upgrade from it is tested.
        @Option(help: .hidden) var upTo: Int?

        func validate() throws {
            guard (0...120).contains(monthsBack) else { throw ValidationError("--months-back must be 0–120") }
        }

        /// "10 monthly partitions made: 5 months (2026-11 to 2027-03) for runs and for outcomes".
        static func partitionsMade(_ names: Set<String>) -> String {
            let months = Set(names.map { String($0.suffix(7)).replacingOccurrences(of: "_", with: "-") }).sorted()
            let tables = ["runs", "outcomes"].filter { table in names.contains { $0.hasPrefix(table + "_") } }
            let span = months.count == 1 ? months[0] : "\(months.first!) to \(months.last!)"
            return
                "\(counted(names.count, "monthly partition")) made: \(counted(months.count, "month")) (\(span)) for \(tables.joined(separator: " and for "))"
        }

        func run() async throws {
            try await FleetCommand.reporting {
                let (applied, made) = try await FleetStore.with(
                    try store.connection(),
                    logger: FleetCommand.logger
                ) { fleet in
                    // Partitions come from the migrations and from the months asked for: counted as tables.
                    let before = try await fleet.monthlyPartitions()
                    let applied = try await fleet.migrate(upTo: upTo)
                    if upTo == nil { _ = try await fleet.ensurePartitions(monthsBack: monthsBack) }
                    return (applied, try await fleet.monthlyPartitions().subtracting(before))
                }
                print(applied == 0 ? "fleet schema up to date" : "fleet schema: \(applied) migration(s) applied")
                if !made.isEmpty { print(Self.partitionsMade(made)) }
            }
        }
    }

    struct AddRobot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-robot",
            abstract: "Give a robot its own role: it may insert only its own rows and read the fleet's versions."
        )
        @OptionGroup var store: Connection
        @Argument(help: "The robot's id, which is its role.") var robot: String
        @Option(help: "File holding the robot's new password (its fleet-password credential).") var robotPasswordFile:
            String
        @Option(help: "Its device class (the profile's device name).") var deviceClass: String
        @Option(help: "A label for fleet status.") var label: String?

        func run() async throws {
            try await FleetCommand.reporting {
                let password = try FileText.text(robotPasswordFile, what: "password file")
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                try await FleetStore.with(try store.connection(), logger: FleetCommand.logger) {
                    try await $0.addRobot(robot, password: password, deviceClass: deviceClass, label: label)
                }
                print("robot \(robot) added (\(deviceClass))")
            }
        }
    }

    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Upload this robot's runs and outcomes and pull the fleet's newest version (the edgeplan-fleet service)."
        )
        @Option(help: "Policy file with a fleet: section.") var policy: String = "/etc/edgeplan/policy.yaml"
        @Option(help: "The daemon's state directory (default: $STATE_DIRECTORY).") var stateDir: String?
        @Option(help: "Time between rounds, with a unit.") var interval: String = "30s"
        @Option(help: "The longest a round may take before its connection is closed and the next round resumes.")
        var timeout: String = "60s"
        @Flag(help: "Catch up, then exit (74 when the fleet could not be reached).") var once = false

        /// A stored run's latency as the robot's profile predicts it, for the fleet's ratios.
        static func predictor(_ profile: ProfileSet) -> @Sendable (ObservationStore.UploadRow) -> Double? {
            let predictor = Predictor(device: profile.device)
            return { row in
                guard let model = row.values["model"]?.string,
                    let quantization = row.values["quantization"]?.string.flatMap(Quantization.init(rawValue:)),
                    let variant = try? profile.variant(model: model, quantization: quantization),
                    let input = row.values["inputTokens"]?.int, let output = row.values["outputTokens"]?.int,
                    let parallel = row.values["parallel"]?.int
                else { return nil }
                return predictor.predict(variant, input: Int(input), output: Double(output), parallel: Int(parallel))
                    .latencyS
            }
        }

        /// The machine's id (systemd's `/etc/machine-id`), the robot's id unless its policy names one.
        static func machineID(_ path: String = "/etc/machine-id") -> String? {
            guard let data = FileManager.default.contents(atPath: path),
                let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
                !text.isEmpty
            else { return nil }
            return text
        }

        /// What the round wrote for the daemon to learn: how this robot's own rows were left out, or why nothing.
        static func ownRows(_ round: FleetSync.Round) -> String {
            if let reason = round.versionNotLearned { return "; \(reason)" }
            guard let own = round.ownRows else { return "" }
            return
                "; written for the daemon without this robot's own rows (\(counted(own.pooledWithout, "group")) pooled from the other robots only, \(counted(own.dropped, "group")) only this robot made left out)"
        }

        /// Abandoned rounds (see ``FleetStore/abandonedBodies``) after which the service exits to be restarted.
        static let maxAbandoned = 8

        func run() async throws {
            try await FleetCommand.reporting {
                let parsed = try ProfileStore.loadPolicy(policy)
                guard let fleet = parsed.fleet else {
                    throw EdgePlanError.invalidFile("the policy has no fleet: section", file: policy)
                }
                guard let directory = stateDir ?? ProcessInfo.processInfo.environment["STATE_DIRECTORY"] else {
                    throw ValidationError("give --state-dir, or run as the service (STATE_DIRECTORY)")
                }
                let seconds = try parseSeconds(interval, "interval")
                let limit = try parseSeconds(timeout, "timeout")
                let profile = try ProfileStore.load(parsed.profileDirectory)
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let (store, _) = try ObservationStore.openOrReplace(path: "\(directory)/observations.sqlite")
                let sync = FleetSync(
                    connection: try FleetConnection(
                        fleet,
                        relativeTo: URL(fileURLWithPath: policy).deletingLastPathComponent().path
                    ),
                    store: store,
                    deviceClass: fleet.deviceClass ?? profile.device.name,
                    profileVersion: profile.version,
                    powerMode: profile.device.calibratedPowerMode,
                    robotID: fleet.robotID ?? Self.machineID(),
                    batchSize: fleet.batchSize,
                    stateDirectory: directory,
                    predictedS: Self.predictor(profile)
                )
                var backoff = seconds
                while true {
                    do {
                        let round = try await sync.round(logger: FleetCommand.logger, timeout: .seconds(limit))
                        try sync.writeState(round: round, error: nil)
                        // Written at once, not buffered: the journal gets one line a round as it happens.
                        FileHandle.standardOutput.write(
                            Data(
                                ("sent \(round.runsSent) runs and \(round.outcomesSent) outcomes (the fleet lacked \(round.runsLag) and \(round.outcomesLag)); fleet version \(round.version.map(String.init) ?? "none")\(Self.ownRows(round))\n")
                                    .utf8
                            )
                        )
                        backoff = seconds
                        // Once: rounds until one finds nothing left (a round stops at its cap of batches).
                        if once && round.complete { return }
                        if once { continue }
                    } catch {
                        // The store keeps everything: the next round sends what this one could not.
                        let message = (error as? FleetError)?.description ?? "\(error)"
                        try? sync.writeState(round: nil, error: message)
                        FileHandle.standardError.write(Data("fleet sync: \(message)\n".utf8))
                        if once { throw FleetError(message) }
                        // Rounds given up at their deadline that never returned: past a few, start afresh (the
                        // service restarts on failure) rather than keep a task and a connection for each.
                        let stuck = FleetStore.abandonedBodies
                        if stuck >= Self.maxAbandoned {
                            throw FleetError("\(stuck) rounds given up at their deadline never returned; restarting")
                        }
                        // Doubling, up to 32 intervals (at most 5 min): a long outage is not hammered.
                        backoff = min(backoff * 2, max(seconds, min(300, seconds * 32)))
                    }
                    try await Task.sleep(for: .seconds(once ? 0 : backoff))
                }
            }
        }
    }

    struct Aggregate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Pool every robot's runs and outcomes into a new fleet version: calibrations per device class and variant, accuracy and output lengths per task class and group, robots that differ."
        )
        @OptionGroup var store: Connection
        @Option(help: "A robot whose latency differs from its class by more than this share is flagged.")
        var flagThreshold: Double = 0.10
        @Option(help: "The most one robot may move a pooled accuracy, a fraction.") var maxInfluence: Double = 0.05
        @Option(help: "The most one robot may move a pooled output length (its geometric mean), a share.")
        var maxLengthInfluence: Double = 0.10
        @Option(help: "Pool only runs and outcomes of this last stretch (30d, 12h; default: all of them).")
        var window: String?
        @Flag(help: "Print the version's JSON.") var json = false

        func validate() throws { if let window { _ = try parseSeconds(window, "window") } }

        func run() async throws {
            try await FleetCommand.reporting {
                let since =
                    try window.map { Date().timeIntervalSince1970 - (try parseSeconds($0, "window")) }
                    ?? FleetStore.always
                var chosen = FleetPooling.Options()
                chosen.flagThreshold = flagThreshold
                chosen.maxInfluence = maxInfluence
                chosen.maxLengthInfluence = maxLengthInfluence
                let options = chosen
                let result = try await FleetStore.with(try store.connection(), logger: FleetCommand.logger) {
                    try await $0.aggregate(options: options, since: since)
                }
                if json { return printJSON(.fields(["version": .int(Int(result.version)), "body": result.body])) }
                print(
                    "fleet version \(result.version) from \(result.runs) runs\(window.map { " of the last \($0)" } ?? "")"
                )
                if case let .array(items)? = result.changes["changed"] {
                    for item in items { print("  \(item.stringValue ?? "")") }
                    // Every aggregate makes a version; robots learn it, and nothing they plan changes.
                    if items.isEmpty, result.version > 1 {
                        print("  nothing changed since version \(result.version - 1)")
                    }
                }
                if case let .array(flagged)? = result.body["flagged"], !flagged.isEmpty {
                    print("  flagged: \(flagged.compactMap(\.stringValue).joined(separator: ", "))")
                }
            }
        }
    }

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Remove runs and outcomes older than a stretch: whole months dropped, older rows of the default partition deleted; robots do not send them again."
        )
        @OptionGroup var store: Connection
        @Option(help: "Remove what is older than this (365d, 90d).") var olderThan: String
        @Flag(help: "Only say what would be removed.") var dryRun = false

        func validate() throws { _ = try parseSeconds(olderThan, "older-than") }

        func run() async throws {
            try await FleetCommand.reporting {
                let before = Date().timeIntervalSince1970 - (try parseSeconds(olderThan, "older-than"))
                let dry = dryRun
                let pruned = try await FleetStore.with(try store.connection(), logger: FleetCommand.logger) {
                    try await $0.prune(before: before, dryRun: dry)
                }
                // runs_2026_08 and outcomes_2026_08 are one month: 2026-08.
                var seen: Set<String> = []
                let names = pruned.tables.map { String($0.suffix(7)).replacingOccurrences(of: "_", with: "-") }
                    .filter { seen.insert($0).inserted }
                let months = names.isEmpty ? "no whole month" : "months \(names.joined(separator: ", "))"
                print(
                    "\(dry ? "would remove" : "removed") \(pruned.runs) runs and \(pruned.outcomes) outcomes older than \(olderThan): \(months)"
                )
            }
        }
    }

    struct FleetStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Robots, their upload lag and last error, the flagged ones, and the fleet's versions."
        )
        @OptionGroup var store: Connection
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await FleetCommand.reporting {
                let (robots, versions, latest) = try await FleetStore.with(
                    try store.connection(),
                    logger: FleetCommand.logger
                ) { fleet in
                    (try await fleet.robots(), try await fleet.versions(limit: 5), try await fleet.latestVersion())
                }
                let body = latest.flatMap { try? JSONValue.parse(Array($0.body.utf8)) }
                let flagged = Set((body?["flagged"]?.arrayValue ?? []).compactMap(\.stringValue))
                // Roles that report one robot id: one machine's credentials copied, or one robot given two roles.
                let shared = Dictionary(grouping: robots.filter { $0.robotID != nil }, by: { $0.robotID! })
                    .mapValues { $0.map(\.robot) }.filter { $0.value.count > 1 }
                let robotsJSON: [JSONValue] = robots.map { robot in
                    .fields([
                        "robot": .string(robot.robot), "deviceClass": .string(robot.deviceClass),
                        "label": robot.label.map(JSONValue.string) ?? .null,
                        "runs": .int(Int(robot.runs)), "runsLag": .int(Int(robot.runsLag)),
                        "outcomes": .int(Int(robot.outcomes)),
                        "outcomesLag": .int(Int(robot.outcomesLag)),
                        "lastUploadAgoS": robot.lastUploadAgoS.map(JSONValue.number) ?? .null,
                        "lastError": robot.lastError.map(JSONValue.string) ?? .null,
                        "flagged": .bool(flagged.contains(robot.robot)),
                        "robotId": robot.robotID.map(JSONValue.string) ?? .null,
                        "sharesIdWith": .array(
                            (shared[robot.robotID ?? ""] ?? []).filter { $0 != robot.robot }.map(JSONValue.string)
                        ),
                    ])
                }
                let versionsJSON: [JSONValue] = versions.map { version in
                    .fields([
                        "version": .int(Int(version.version)), "ageS": .number(version.createdAgoS),
                        "changes": (try? JSONValue.parse(Array(version.changes.utf8))) ?? .null,
                    ])
                }
                if json { return printJSON(.fields(["robots": .array(robotsJSON), "versions": .array(versionsJSON)])) }
                print(
                    "\(robots.count) robots, \(flagged.count) flagged\(shared.isEmpty ? "" : ", \(shared.count) id(s) reported by more than one role")"
                )
                for robot in robots {
                    let ago = robot.lastUploadAgoS.map { "\(Int($0)) s ago" } ?? "never"
                    print(
                        "  \(robot.robot.padded(20)) \(robot.deviceClass.padded(24)) runs \(robot.runs) (lag \(robot.runsLag)), outcomes \(robot.outcomes) (lag \(robot.outcomesLag)), uploaded \(ago)\(flagged.contains(robot.robot) ? ", FLAGGED" : "")\(robot.lastError.map { ", last error: \($0)" } ?? "")\(robot.robotID.map { ", id \($0.prefix(16))" } ?? "")\(shared[robot.robotID ?? ""].map { ", SAME ID AS \($0.filter { $0 != robot.robot }.joined(separator: ", "))" } ?? "")"
                    )
                }
                for version in versions {
                    let changes = (try? JSONValue.parse(Array(version.changes.utf8)))?["changed"]?.arrayValue ?? []
                    print("  version \(version.version), \(Int(version.createdAgoS)) s ago: \(changes.count) changes")
                }
            }
        }
    }
}
