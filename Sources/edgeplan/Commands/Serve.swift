import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation
import NIOCore

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the planner daemon (Varlink on a Unix socket, systemd-aware)."
    )

    @Option(help: "Unix socket to bind when not socket-activated.") var socket: String?
    @Option(parsing: .unconditional, help: "Event-loop threads.") var threads: Int = System.coreCount
    @Option(
        help:
            "State directory for reports and recalibrated profiles (default: $STATE_DIRECTORY; without one, nothing is kept)."
    )
    var stateDir: String?
    @Option(
        help:
            "Power rails: \(PowerRailKind.allCases.filter { $0 != .replay }.map(\.rawValue).joined(separator: ", ")) or none (default: the first found)."
    )
    var rails: String?
    @Option(help: "Read sysfs and procfs below this directory instead of /.") var sysfsRoot: String = "/"
    @Option(help: "Time between power-rail samples.") var sampleInterval: String = "50ms"
    @Option(help: "Time between periodic refits.") var refitInterval: String = "10m"
    @Option(parsing: .unconditional, help: "Connections open at once; more get TooManyConnections.") var maxConnections:
        Int = 4096
    @Option(
        help:
            "Connections one user may hold open; more get TooManyConnections (default: 1024, at most --max-connections)."
    )
    var maxConnectionsPerUser: Int?
    @Option(help: "Close a connection that sends nothing for this long.") var idleTimeout: String = "5m"
    @Option(help: "Write Prometheus metrics to this file (node_exporter textfile format), replaced atomically.")
    var metricsTextfile: String?
    @Option(help: "How often to write the metrics file.") var metricsInterval: String = "15s"
    @OptionGroup var snapshot: SnapshotOptions

    func validate() throws {
        if let rails, rails != "none", PowerRailKind(rawValue: rails) == nil || rails == "replay" {
            throw ValidationError(
                "unknown --rails '\(rails)'; use \(PowerRailKind.allCases.filter { $0 != .replay }.map(\.rawValue).joined(separator: ", ")) or none"
            )
        }
        let sample = try parseSeconds(sampleInterval, "sample-interval")
        guard sample >= 0.005, sample <= 60 else { throw ValidationError("--sample-interval must be within 5ms...60s") }
        guard try parseSeconds(refitInterval, "refit-interval") >= 1 else {
            throw ValidationError("--refit-interval must be at least 1s")
        }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be within 1...64") }
        guard (1...100_000).contains(maxConnections) else {
            throw ValidationError("--max-connections must be within 1...100000")
        }
        if let maxConnectionsPerUser, !(1...maxConnections).contains(maxConnectionsPerUser) {
            throw ValidationError("--max-connections-per-user must be within 1...--max-connections")
        }
        _ = try parseSeconds(idleTimeout, "idle-timeout")
        _ = try parseSeconds(metricsInterval, "metrics-interval")
    }

    func run() async throws {
        try await reportingErrors {
            try await Daemon.run(
                .init(
                    socketPath: socket,
                    policyPath: snapshot.policy,
                    profileDirectory: snapshot.profile,
                    threads: threads,
                    stateDirectory: stateDir
                        ?? ProcessInfo.processInfo.environment["STATE_DIRECTORY"].flatMap {
                            $0.split(separator: ":").first.map(String.init)
                        },
                    railSource: rails,
                    sysfsRoot: sysfsRoot,
                    sampleInterval: try parseSeconds(sampleInterval, "sample-interval"),
                    refitInterval: try parseSeconds(refitInterval, "refit-interval"),
                    limits: .init(
                        maxConnections: maxConnections,
                        maxConnectionsPerUser: maxConnectionsPerUser ?? min(1024, maxConnections),
                        idleTimeoutS: try parseSeconds(idleTimeout, "idle-timeout")
                    ),
                    metricsTextfile: metricsTextfile,
                    metricsInterval: try parseSeconds(metricsInterval, "metrics-interval")
                )
            )
        }
    }
}
