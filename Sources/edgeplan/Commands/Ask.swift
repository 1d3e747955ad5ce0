import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import EdgePlanEngine
import Foundation

/// `edgeplan ask`: the scheduler's whole loop in one call: plan on the daemon, run the plan on the engine, vote,
/// report, and print the answer with the plan and what was measured.
struct Ask: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract:
            "Plan on the daemon, run the plan on the engine, vote over the samples, report, and print the answer.",
        discussion: """
            One request (--task with --prompt or --prompt-file), or many (--requests FILE: JSON lines with task, prompt,
            and optionally answer, deadline, energy, options), over one daemon connection and one pool of engine
            connections. Outcomes:
              answered    the plan ran; its samples' majority answer is printed and the run reported;
              infeasible  nothing fits the limits: nothing runs and nothing is reported (exit 2 for one request);
              cut         the deadline passed mid-run: the engine's requests are closed (llama-server stops), the
                          samples that answered are voted, and the run is reported as cut: its latency is judged at
                          the lengths streamed by then, which only bound the true ones from below and teach no length;
              preempted   a higher-priority plan made the run yield (the daemon's preempt event, with its ledger on):
                          its engine requests are closed at once and it is reported as preempted, learned from not
                          at all;
              engine-error the engine failed: nothing is reported, since the failure says nothing about the plan
                          (exit 74 for one request).
            Without --rails the daemon attributes the run's energy from its own rails over [start, start + latency].
            """
    )

    @Option(help: "Task class.") var task: String?
    @Option(help: "The prompt.") var prompt: String?
    @Option(help: "A file holding the prompt.") var promptFile: String?
    @Option(help: "The gold answer: the run is reported correct or not.") var answer: String?
    @Option(help: "Options of a multiple-choice prompt, separated by '|' (letters A, B, ...).") var options: String?
    @Option(help: "JSON lines of requests: task, prompt, and optionally answer, options, deadline, energy.")
    var requests: String?
    @Option(help: "Grader: choice, exact, numeric[:TOL[%]], regex:PATTERN or command:CMD.") var grader: String =
        "choice"
    @Option(parsing: .unconditional, help: "Deadline with a unit (default: the policy's).") var deadline: String?
    @Option(parsing: .unconditional, help: "Energy budget with a unit.") var energy: String?
    @Option(
        parsing: .unconditional,
        help:
            "Prompt tokens to plan for (default: counted by the engine's tokenizer after its chat template; bytes / 4 where the engine has no tokenizer)."
    ) var input: Int?
    @Option(
        help:
            "The engine for every plan: http://HOST:PORT or unix:/PATH (default: each plan's endpoint from the policy's global.endpoints, else \(Self.defaultEngine))."
    ) var engine: String?
    @Option(help: "Model name the engine serves, replacing the plan's.") var engineModel: String?
    @OptionGroup var daemon: DaemonSocket
    @Flag(help: "Do not report the outcome to the daemon.") var noReport = false
    @Flag(help: "Print one JSON object per request.") var json = false

    struct Item {
        var task: String
        var prompt: String
        var answer: String?
        var options: [String]
        var deadlineS: Double?
        var energyJ: Double?
    }

    func validate() throws {
        if requests == nil {
            guard task != nil else {
                throw ValidationError("give --task with --prompt or --prompt-file, or --requests")
            }
            guard (prompt == nil) != (promptFile == nil) else {
                throw ValidationError("give one of --prompt and --prompt-file")
            }
        }
        if let deadline { _ = try parseSeconds(deadline, "deadline") }
        if let energy { _ = try parseJoules(energy, "energy") }
        do {
            _ = try AnswerGrader.parse(grader)
            if let engine { _ = try EngineEndpoint(engine) }
        } catch let error as EdgePlanError {
            throw ValidationError(error.message)
        }
    }

    func items() throws -> [Item] {
        guard let requests else {
            var text = prompt ?? ""
            if let promptFile {
                do { text = try String(contentsOfFile: promptFile, encoding: .utf8) } catch {
                    throw EdgePlanError(.io, "cannot read the prompt: \(error.localizedDescription)", file: promptFile)
                }
            }
            return [
                Item(
                    task: task!,
                    prompt: text,
                    answer: answer,
                    options: options.map { $0.split(separator: "|").map { String($0).trimmed } } ?? [],
                    deadlineS: try deadline.map { try parseSeconds($0, "deadline") },
                    energyJ: try energy.map { try parseJoules($0, "energy") }
                )
            ]
        }
        let text: String
        do { text = try String(contentsOfFile: requests, encoding: .utf8) } catch {
            throw EdgePlanError(.io, "cannot read the requests: \(error.localizedDescription)", file: requests)
        }
        var items: [Item] = []
        for (offset, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmed.isEmpty {
            let row: JSONValue
            do { row = try JSONValue.parse(Array(line.utf8)) } catch {
                throw EdgePlanError.invalidFile("not a JSON object: \(error)", file: requests, line: offset + 1)
            }
            guard let task = row["task"]?.stringValue ?? self.task, let prompt = row["prompt"]?.stringValue else {
                throw EdgePlanError.invalidFile("a request needs 'task' and 'prompt'", file: requests, line: offset + 1)
            }
            var options: [String] = []
            if case let .array(values)? = row["options"] { options = values.compactMap(\.stringValue) }
            func quantity(_ key: String, _ parse: (String) throws -> Double) throws -> Double? {
                guard let raw = row[key], raw != .null else { return nil }
                do { return try raw.stringValue.map(parse) ?? raw.doubleValue } catch {
                    throw EdgePlanError.invalidFile("\(error)", file: requests, line: offset + 1, field: key)
                }
            }
            items.append(
                Item(
                    task: task,
                    prompt: prompt,
                    answer: row["answer"]?.stringValue ?? row["answer"]?.intValue.map(String.init),
                    options: options,
                    deadlineS: try quantity("deadline") { try parseSeconds($0, "deadline") }
                        ?? (try deadline.map { try parseSeconds($0, "deadline") }),
                    energyJ: try quantity("energy") { try parseJoules($0, "energy") }
                        ?? (try energy.map { try parseJoules($0, "energy") })
                )
            )
        }
        return items
    }

    func run() async throws {
        try await reportingErrors {
            let items = try items()
            let answerGrader = try AnswerGrader.parse(grader)
            let planner = try VarlinkClient(socketPath: daemon.socket)
            // Subscribed before the first plan: a higher-priority plan that makes a run of ours yield stops it.
            let watch = PreemptionWatch(socketPath: daemon.socket)
            let sites = EngineSites()
            // --engine: every plan goes there, and it is checked before the first plan.
            var fixed: EngineSite?
            if let engine { fixed = try await sites.site(engine) }
            var tally: [String: Int] = [:]
            var lastOutcome = "answered"
            let loop = PlanLoop(input: input, engineModel: engineModel, report: !noReport, grader: answerGrader)
            for item in items {
                let result = try await loop.run(
                    PlanLoop.Request(
                        task: item.task,
                        prompt: item.prompt,
                        answer: item.answer,
                        options: item.options,
                        deadlineS: item.deadlineS,
                        energyJ: item.energyJ
                    ),
                    planner: planner,
                    site: fixed,
                    sites: sites,
                    yielded: { await watch.yielded($0) }
                )
                lastOutcome = result["outcome"]?.stringValue ?? "?"
                tally[lastOutcome, default: 0] += 1
                if json { printJSON(result) } else { show(result) }
            }
            if items.count > 1 && !json {
                print(
                    "\(items.count) requests: "
                        + tally.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                )
            }
            if items.count == 1 {
                if lastOutcome == "infeasible" { throw ExitStatus.infeasible }
                if lastOutcome == "engine-error" { throw ExitStatus.ioError }
            }
        }
    }

    func show(_ result: JSONValue) {
        let outcome = result["outcome"]?.stringValue ?? "?"
        let plan = result["plan"] ?? .null
        let configuration =
            "\(plan["model"]?.stringValue ?? "?") \(plan["mode"]?.stringValue ?? "")\(plan["tokenBudget"]?.intValue.map { " \($0)" } ?? "") x\(plan["parallel"]?.intValue ?? 1)"
        switch outcome {
        case "infeasible":
            print(
                "\(result["task"]?.stringValue ?? ""): infeasible: \(result["reason"]?["message"]?.stringValue ?? "")"
            )
        case "engine-error":
            print(
                "\(result["task"]?.stringValue ?? ""): \(configuration): engine error: \(result["error"]?.stringValue ?? "")"
            )
        default:
            let answer = result["answer"]?.stringValue ?? "(no answer)"
            let correct = result["correct"]?.boolValue.map { $0 ? " (right)" : " (wrong)" } ?? ""
            let energy = result["energyJ"]?.doubleValue.map { ", \(format($0, 1)) J" } ?? ""
            print(
                "\(result["task"]?.stringValue ?? ""): \(answer)\(correct) from \(configuration)\(outcome == "cut" ? ", cut at the deadline" : outcome == "preempted" ? ", preempted by a higher-priority run" : ""): "
                    + "\(format((result["latencyMs"]?.doubleValue ?? 0) / 1000, 2)) s of \(format((result["deadlineMs"]?.doubleValue ?? 0) / 1000, 2)) s"
                    + " (predicted \(format((result["predictedLatencyMs"]?.doubleValue ?? 0) / 1000, 2)) s)\(energy); report: \(result["report"]?["learning"]?.stringValue ?? "not sent")"
            )
        }
    }
}

extension Ask {
    static let defaultEngine = PlanLoop.defaultEngine
}

extension VarlinkClient: PlannerCalls {}
