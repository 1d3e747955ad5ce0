import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Choose model, quantization, mode, token budget and parallel factor for one request."
    )

    @Option(help: "Task class, e.g. mmlu-redux, natural-plan-trip.") var task: String
    @Option(parsing: .unconditional, help: "Deadline with a unit: 250ms, 5s, 2m (default: the policy's).") var deadline:
        String?
    @Option(parsing: .unconditional, help: "Energy budget: 200J, 1.5kJ.") var energy: String?
    @Option(parsing: .unconditional, help: "Prompt tokens (default: the task's typical length).") var input: Int?
    @Option(name: .customLong("min-accuracy"), parsing: .unconditional, help: "Minimum accuracy, 0...1.")
    var minAccuracy: Double?
    @Option(help: "\(Objective.allCases.map(\.rawValue).joined(separator: ", ")) (default: the policy's).")
    var objective: String?
    @Option(help: "Ask a running daemon on this Unix socket instead of solving here.") var socket: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var snapshot: SnapshotOptions

    func validate() throws {
        if let deadline { _ = try parseSeconds(deadline, "deadline") }
        if let energy { _ = try parseJoules(energy, "energy") }
        if let input, !(1...PlanRequest.maxInputTokens).contains(input) {
            throw ValidationError("--input must be within 1...\(PlanRequest.maxInputTokens), got \(input)")
        }
        if let minAccuracy, !(minAccuracy.isFinite && (0...1).contains(minAccuracy)) {
            throw ValidationError("--min-accuracy must be within 0...1, got \(minAccuracy)")
        }
        if let objective, Objective(rawValue: objective) == nil {
            throw ValidationError(
                "--objective must be one of \(Objective.allCases.map(\.rawValue).joined(separator: ", ")), got '\(objective)'"
            )
        }
    }

    func request() throws -> PlanRequest {
        PlanRequest(
            task: task,
            deadlineS: try deadline.map { try parseSeconds($0, "deadline") },
            energyBudgetJ: try energy.map { try parseJoules($0, "energy") },
            inputTokens: input,
            minAccuracy: minAccuracy,
            objective: objective.flatMap(Objective.init(rawValue:))
        )
    }

    func run() async throws {
        try await reportingErrors {
            let outcome: JSONValue
            if let socket {
                outcome = try VarlinkClient.plan(socketPath: socket, request: try request())
            } else {
                switch try snapshot.planner().plan(try request()) {
                case let .plan(plan): outcome = plan.json
                case let .infeasible(reason): outcome = reason.json
                }
            }
            let infeasible = outcome["error"]?.stringValue == "Infeasible"
            if json {
                printJSON(outcome)
            } else {
                printHuman(outcome)
            }
            if infeasible { throw ExitStatus.infeasible }
        }
    }

    private func printHuman(_ plan: JSONValue) {
        if plan["error"] != nil {
            print("no feasible plan: \(plan["message"]?.stringValue ?? "")")
            if let closest = plan["closest"], !closest.isNull, closest["model"] != nil {
                print("closest: \(describe(closest)): \(Self.figures(closest))")
            }
            if let miss = Self.miss(plan) { print("misses by \(miss)") }
            return
        }
        let predicted = plan["predicted"] ?? .null
        let explored = plan["explored"]?.boolValue == true
        print(
            "task \(task): \(describe(plan))\(explored ? " (explored: a near-best configuration, tried to learn it)" : "")"
        )
        print(
            "  latency   \(format((predicted["latencyMs"]?.doubleValue ?? 0) / 1000, 2)) s mean, \(format((predicted["latencyPercentileMs"]?.doubleValue ?? 0) / 1000, 2)) s at p\(format((predicted["percentile"]?.doubleValue ?? 0) * 100, 0)) (deadline \(format((plan["deadlineMs"]?.doubleValue ?? 0) / 1000, 2)) s)"
        )
        print(
            "  miss      \(format((predicted["missProbability"]?.doubleValue ?? 0) * 100, 2)) % chance of missing the deadline"
        )
        print(
            "  energy    \(format(predicted["energyJ"]?.doubleValue ?? 0, 1)) J mean, \(format(predicted["energyPercentileJ"]?.doubleValue ?? 0, 1)) J at p\(format((predicted["percentile"]?.doubleValue ?? 0) * 100, 0))"
        )
        let observations = predicted["observations"]?.intValue ?? 0
        let parallel = plan["parallel"]?.intValue ?? 1
        // A learned figure comes from single-sample reports; with k samples the plan's is after the vote.
        let evidence =
            (observations > 0 ? " from \(counted(observations, "report"))" : "")
            + (parallel > 1 ? ", majority of \(parallel) samples" : "")
        print(
            "  accuracy  \(format((predicted["accuracy"]?.doubleValue ?? 0) * 100, 1)) % (80 % interval \(format((predicted["accuracyLow"]?.doubleValue ?? 0) * 100, 1))–\(format((predicted["accuracyHigh"]?.doubleValue ?? 0) * 100, 1)) %, \(predicted["accuracySource"]?.stringValue ?? "")\(evidence))"
        )
        print(
            "  length    \(format(predicted["meanOutputTokens"]?.doubleValue ?? 0, 0)) tokens mean, \(format(predicted["percentileOutputTokens"]?.doubleValue ?? 0, 0)) at p\(format((predicted["percentile"]?.doubleValue ?? 0) * 100, 0)) of the longest sample, \(format((predicted["capProbability"]?.doubleValue ?? 0) * 100, 1)) % of samples hit the cap (\(predicted["lengthSource"]?.stringValue ?? ""))"
        )
        print("  cost      $\(format(predicted["costUsdPerMTok"]?.doubleValue ?? 0, 4)) per million tokens")
        if let body = plan["request"]?["body"] { print("  request   \(body.serialized())") }
    }

    /// A front point's figures: latency and energy at the percentile, accuracy.
    static func figures(_ point: JSONValue) -> String {
        "\(format((point["latencyPercentileMs"]?.doubleValue ?? 0) / 1000, 2)) s and \(format(point["energyPercentileJ"]?.doubleValue ?? 0, 1)) J at the percentile, accuracy \(format((point["accuracy"]?.doubleValue ?? 0) * 100, 1)) %"
    }

    /// How far the closest configuration misses, in the limit's unit, against what was asked.
    static func miss(_ infeasible: JSONValue) -> String? {
        if let miss = infeasible["missByMs"]?.doubleValue, let asked = infeasible["requestedMs"]?.doubleValue {
            return "\(format(miss / 1000, 2)) s (\(format(asked / 1000, 2)) s available after the safety margin)"
        }
        if let miss = infeasible["missByJ"]?.doubleValue, let asked = infeasible["requestedJ"]?.doubleValue {
            return "\(format(miss, 1)) J (budget \(format(asked, 1)) J)"
        }
        if let miss = infeasible["missByAccuracy"]?.doubleValue,
            let asked = infeasible["requestedAccuracy"]?.doubleValue
        {
            return "\(format(miss * 100, 1)) accuracy points (floor \(format(asked * 100, 1)) %)"
        }
        return nil
    }

    private func describe(_ point: JSONValue) -> String {
        let budget = point["tokenBudget"]?.intValue.map { " \($0) tokens" } ?? ""
        return
            "\(point["model"]?.stringValue ?? "?") \(point["quantization"]?.stringValue ?? "") \(point["mode"]?.stringValue ?? "")\(budget) x\(point["parallel"]?.intValue ?? 1)"
    }
}
