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
                "  plans \(int("plans")) (\(Self.exploration(status["exploration"] ?? .null))), infeasible \(int("infeasible")), reloads \(int("reloads"))"
            )
            print("  errors \(int("errors"))\(Self.breakdown(status["errorsByKind"]))")
            print(
                "  reports \(int("reports")) (not allowed \(int("refusedReports")), over the rate \(int("rateLimitedReports"))); outcomes refused\(Self.breakdown(status["learning"]?["refused"], zero: " none"))"
            )
            print(
                "  connections \(int("connections")) (turned away \(int("rejectedConnections")), idle-closed \(int("idleClosed")), oversize \(int("oversizeFrames")))"
            )
            if let failure = status["lastReloadError"]?.stringValue { print("  last reload failed: \(failure)") }
            if let ledger = status["ledger"], ledger != .null {
                let runs: [JSONValue] = if case let .array(items)? = ledger["runs"] { items } else { [] }
                print(
                    "  ledger: \(counted(runs.count, "admitted run")), \(ledger["sequences"]?.intValue ?? 0) sequences; forgotten at their predicted end \(ledger["expired"]?.intValue ?? 0), preempted \(ledger["preempted"]?.intValue ?? 0)"
                )
                for run in runs {
                    print(
                        "    \(run["requestId"]?.stringValue ?? "") \(run["task"]?.stringValue ?? "") \(run["model"]?.stringValue ?? "") x\(run["sequences"]?.intValue ?? 1) (priority \(run["priority"]?.intValue ?? 0)): ends in \(format((run["endInMs"]?.doubleValue ?? 0) / 1000, 2)) s, deadline in \(format((run["deadlineInMs"]?.doubleValue ?? 0) / 1000, 2)) s"
                    )
                }
            }
            if case let .array(groups)? = status["learning"]?["groups"], !groups.isEmpty {
                // One sample's accuracy, where a plan's accuracy is after its vote over k samples: the two differ.
                print(
                    "  learned (one sample's accuracy, at the group's smallest budget; plans show theirs after the vote):"
                )
                for group in groups {
                    let accuracy = group["singleSampleAccuracy"]?.doubleValue.map { format($0 * 100, 1) + " %" } ?? "-"
                    let all = group["observations"]?.intValue ?? 0
                    let fleet = group["fleetObservations"]?.intValue ?? 0
                    let from =
                        fleet > 0
                        ? "\(counted(all - fleet, "own report")) and \(fleet) of the fleet's prior"
                        : counted(all, "own report")
                    print(
                        "    \(group["task"]?.stringValue ?? "") \(group["model"]?.stringValue ?? "") \(group["mode"]?.stringValue ?? ""): \(accuracy) single-sample, from \(from)"
                    )
                }
            }
            if let fleet = status["fleet"], fleet != .null { Self.printFleet(fleet) }
        }
    }

    /// The fleet lines: the version learned as the prior and how the robot's own rows were left out of it, then
    /// what the sync service last did.
    static func printFleet(_ fleet: JSONValue) {
        if let version = fleet["version"]?.intValue {
            let own = fleet["ownRows"]
            let left =
                own.flatMap { $0 == .null ? nil : $0 }.map {
                    "; this robot's own rows left out: \(counted($0["pooledWithout"]?.intValue ?? 0, "group")) pooled from the other robots only, \(counted($0["dropped"]?.intValue ?? 0, "group")) only it made dropped"
                } ?? ""
            print(
                "  fleet: version \(version) learned as the prior (\(counted(fleet["priorOutcomes"]?.intValue ?? 0, "pseudo-outcome"))\(left))"
            )
        } else {
            print("  fleet: no version learned yet")
        }
        guard let sync = fleet["sync"], sync != .null else {
            print("    sync: no state written yet (edgeplan-fleet.service)")
            return
        }
        let now = Date().timeIntervalSince1970
        let success =
            sync["lastSuccess"]?.doubleValue.map { "last success \(format(max(0, now - $0), 0)) s ago" }
            ?? "no success yet"
        var line = "    sync: \(success)"
        if let sent = sync["runsSent"]?.intValue {
            line +=
                ", sent \(sent) runs and \(sync["outcomesSent"]?.intValue ?? 0) outcomes (lag before: \(sync["runsLagBefore"]?.intValue ?? 0) and \(sync["outcomesLagBefore"]?.intValue ?? 0)), fleet version \(sync["fleetVersion"]?.intValue.map(String.init) ?? "none")"
        }
        print(line)
        if let error = sync["lastError"]?.stringValue { print("    sync's last error: \(error)") }
    }

    /// "InvalidParameter 5, UnknownTask 3" from an object of counts, nonzero ones only, after a colon.
    static func breakdown(_ counts: JSONValue?, zero: String = "") -> String {
        guard case let .object(pairs)? = counts else { return zero }
        let nonzero = pairs.compactMap { key, value in (value.intValue ?? 0) > 0 ? "\(key) \(value.intValue!)" : nil }
        return nonzero.isEmpty ? zero : ": " + nonzero.joined(separator: ", ")
    }

    /// "explored 3 = 7.5 %, 0.12 points given up a plan, cap 0.50" or "no exploration".
    static func exploration(_ exploration: JSONValue) -> String {
        guard exploration["mode"]?.stringValue == "thompson" else { return "no exploration" }
        let share = (exploration["exploredShare"]?.doubleValue ?? 0) * 100
        let loss = (exploration["meanLossPerPlan"]?.doubleValue ?? 0) * 100
        let cap = (exploration["expectedLossCap"]?.doubleValue ?? 0) * 100
        return
            "explored \(exploration["explored"]?.intValue ?? 0) = \(format(share, 1)) %, \(format(loss, 2)) accuracy points given up a plan, cap \(format(cap, 2))"
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
