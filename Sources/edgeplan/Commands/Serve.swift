import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import NIOCore

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the planner daemon (Varlink on a Unix socket, systemd-aware).")

    @Option(help: "Unix socket to bind when not socket-activated.") var socket: String?
    @Option(help: "Event-loop threads.") var threads: Int = System.coreCount
    @OptionGroup var snapshot: SnapshotOptions

    func run() async throws {
        try await reportingErrors {
            try Daemon.run(.init(socketPath: socket, policyPath: snapshot.policy, profileDirectory: snapshot.profile, threads: threads))
        }
    }
}
