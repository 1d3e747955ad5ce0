import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

/// The daemon socket a command talks to.
struct DaemonSocket: ParsableArguments {
    @Option(help: "The daemon's Varlink socket.") var socket: String = "/run/edgeplan/io.edgeplan.Planner"
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running daemon's state: versions, counters, calibration, learning."
    )
    @OptionGroup var daemon: DaemonSocket
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let status = try VarlinkClient.call(socketPath: daemon.socket, "io.edgeplan.Planner.Status")
            if json { return printJSON(status) }
            func int(_ key: String) -> Int { status[key]?.intValue ?? 0 }
            print(
                "edgeplan \(status["version"]?.stringValue ?? "?") on \(status["device"]?.stringValue ?? "?"), up \(Int(status["uptimeS"]?.doubleValue ?? 0)) s"
            )
            print(
                "  profile \(status["profileVersion"]?.stringValue ?? "?"), policy \(status["policyVersion"]?.stringValue ?? "?")"
            )
            print(
                "  plans \(int("plans")), infeasible \(int("infeasible")), errors \(int("errors")), reports \(int("reports")) (refused \(int("refusedReports"))), reloads \(int("reloads"))"
            )
            print(
                "  connections \(int("connections")) (turned away \(int("rejectedConnections")), idle-closed \(int("idleClosed")), oversize \(int("oversizeFrames")))"
            )
            if let failure = status["lastReloadError"]?.stringValue { print("  last reload failed: \(failure)") }
            if case let .array(groups)? = status["learning"]?["groups"], !groups.isEmpty {
                print("  learned:")
                for group in groups {
                    let accuracy = group["singleSampleAccuracy"]?.doubleValue.map { format($0 * 100, 1) + " %" } ?? "-"
                    print(
                        "    \(group["task"]?.stringValue ?? "") \(group["model"]?.stringValue ?? "") \(group["mode"]?.stringValue ?? ""): \(accuracy) from \(group["observations"]?.intValue ?? 0) reports"
                    )
                }
            }
        }
    }
}

struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract:
            "Make a running daemon re-read its policy and profile; a broken policy is refused and the old one kept."
    )
    @OptionGroup var daemon: DaemonSocket

    func run() async throws {
        try await reportingErrors {
            let reply = try VarlinkClient.call(socketPath: daemon.socket, "io.edgeplan.Planner.Reload")
            print(
                "reloaded: policy \(reply["policyVersion"]?.stringValue ?? "?"), profile \(reply["profileVersion"]?.stringValue ?? "?")"
            )
        }
    }
}
