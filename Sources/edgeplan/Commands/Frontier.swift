import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct Frontier: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frontier",
        abstract: "The accuracy / latency / energy Pareto front of a task."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, json, csv, svg }

    @Option(help: "Task class.") var task: String
    @Option(parsing: .unconditional, help: "Prompt tokens (default: the task's typical length).") var input: Int?
    @Option(help: "table, json, csv or svg.") var format: Format = .table
    @Option(parsing: .unconditional, help: "Mark the points this deadline allows (svg, table).") var deadline: String?
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?
    @OptionGroup var snapshot: SnapshotOptions

    func validate() throws {
        if let input, !(1...PlanRequest.maxInputTokens).contains(input) {
            throw ValidationError("--input must be within 1...\(PlanRequest.maxInputTokens), got \(input)")
        }
        if let deadline { _ = try parseSeconds(deadline, "deadline") }
    }

    func run() async throws {
        try await reportingErrors {
            let planner = try snapshot.planner()
            let inputTokens = try input ?? planner.limits(PlanRequest(task: task, deadlineS: 3600)).inputTokens
            let front = try planner.exactFront(task: task, inputTokens: inputTokens)
            let limit = try deadline.map { try parseSeconds($0, "deadline") * (1 - planner.policy.safetyMargin) }
            let text: String
            switch format {
            case .json: text = versioned(front.json).serialized(pretty: true) + "\n"
            case .csv: text = FrontierRenderer.csv(front)
            case .svg:
                text = FrontierRenderer.svg(front, latencyLimitS: limit, percentile: planner.policy.latencyPercentile)
            case .table: text = FrontierRenderer.table(front, latencyLimitS: limit)
            }
            if let output {
                try AtomicFile.write(text, to: output)
            } else {
                print(text, terminator: "")
            }
        }
    }
}
