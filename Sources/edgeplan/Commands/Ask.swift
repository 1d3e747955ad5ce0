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
            for item in items {
                let result = try await ask(
                    item,
                    planner: planner,
                    site: fixed,
                    sites: sites,
                    grader: answerGrader,
                    watch: watch
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

    /// One request through the whole loop; the result as the JSON that --json prints.
    func ask(
        _ item: Item,
        planner: VarlinkClient,
        site fixed: EngineSite?,
        sites: EngineSites,
        grader: AnswerGrader,
        watch: PreemptionWatch? = nil
    ) async throws -> JSONValue {
        let clock = ContinuousClock()
        let began = clock.now
        func ms(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) * 1e-15
        }
        let requestID = UUID().uuidString.lowercased()
        let question = TaskQuestion(
            id: requestID,
            prompt: item.prompt,
            answer: item.answer ?? "",
            options: item.options
        )
        // The prompt as the engine counts it: its chat template, then its tokenizer. The plan's body may add to the
        // user's message (a budget sentence, a prefilled answer), so it is counted again once planned, and planned
        // again at that count where it is longer.
        // The engine the plan runs on: --engine, or the one the policy maps the planned model to (known once planned).
        var site = fixed
        var counted: PromptCount? = nil
        func count(on site: EngineSite) async {
            guard input == nil, site.unreachable == nil else { return }
            let counter = EngineClient(endpoint: site.endpoint, capabilities: .llamaServer, model: engineModel ?? "")
            counted = try? await counter.countPrompt(messages: [("user", question.renderedPrompt)])
        }
        if let site { await count(on: site) }
        var inputTokens = input ?? counted?.tokens ?? max(1, (question.renderedPrompt.utf8.count + 3) / 4)
        func requestPlan(_ inputTokens: Int) throws -> JSONValue {
            let limits = site?.limits ?? EngineLimits()
            return try planner.call(
                "io.edgeplan.Planner.Plan",
                .fields([
                    "task": .string(item.task), "deadlineMs": item.deadlineS.map { .number($0 * 1000) } ?? .null,
                    "energyBudgetJ": item.energyJ.map(JSONValue.number) ?? .null, "inputTokens": .int(inputTokens),
                    "requestId": .string(requestID),
                    "contextTokens": limits.contextPerSlot.map(JSONValue.int) ?? .null,
                ])
            )
        }
        var reply = try requestPlan(inputTokens)
        if site == nil {
            // Routed by the plan: its engine counts the prompt and gives its context, and the request is planned again
            // with both (a second plan under the same id replaces the first in the daemon's ledger).
            let url = reply["parameters"]?["plan"]?["request"]?["endpoint"]?.stringValue ?? Self.defaultEngine
            let routed = try await sites.site(url)
            site = routed
            await count(on: routed)
            if routed.unreachable == nil, counted != nil || routed.limits.contextPerSlot != nil {
                inputTokens = input ?? counted?.tokens ?? inputTokens
                reply = try requestPlan(inputTokens)
            }
        }
        let counter = EngineClient(endpoint: site!.endpoint, capabilities: .llamaServer, model: engineModel ?? "")
        var result: [(String, JSONValue)] = [("requestId", .string(requestID)), ("task", .string(item.task))]
        var body: JSONValue = .null
        var request: JSONValue = .null
        var plan: JSONValue = .null
        for attempt in 0..<2 {
            if let error = reply["error"]?.stringValue {
                guard error == "io.edgeplan.Planner.Infeasible" else {
                    throw EdgePlanError.invalidInput(
                        "daemon answered \(error): \(reply["parameters"]?.serialized() ?? "")"
                    )
                }
                return .object(
                    result + [
                        ("outcome", .string("infeasible")), ("reason", reply["parameters"] ?? .null),
                        ("inputTokens", .int(inputTokens)),
                        (
                            "inputTokensSource",
                            .string(input != nil ? "given" : counted?.source.rawValue ?? "estimated")
                        ),
                        ("planMs", .number(ms(clock.now - began))),
                    ]
                )
            }
            guard let planned = reply["parameters"]?["plan"], let planRequest = planned["request"],
                var planBody = planRequest["body"]
            else {
                throw EdgePlanError.invalidInput("the daemon's plan has no request body")
            }
            planBody = Self.filling(planBody, prompt: question.renderedPrompt)
            if let engineModel, case let .object(pairs) = planBody {
                planBody = .object(pairs.map { $0.0 == "model" ? ($0.0, .string(engineModel)) : $0 })
            }
            (plan, request, body) = (planned, planRequest, planBody)
            guard attempt == 0, input == nil, let first = counted, first.source != .estimated,
                case let .array(messages)? = planBody["messages"]
            else { break }
            let exact = try? await counter.countPrompt(
                messages: messages.map { ($0["role"]?.stringValue ?? "user", $0["content"]?.stringValue ?? "") }
            )
            guard let exact, exact.tokens > inputTokens else { break }
            inputTokens = exact.tokens
            counted = exact
            reply = try requestPlan(inputTokens)
        }
        let planned = clock.now
        result += [
            ("inputTokens", .int(inputTokens)),
            ("inputTokensSource", .string(input != nil ? "given" : counted?.source.rawValue ?? "estimated")),
        ]
        let kind = try EngineKind.named(request["engine"]?.stringValue ?? EngineKind.vllm.rawValue)
        // A second plan may name another model, on another engine: it runs where its plan says.
        if fixed == nil, let url = request["endpoint"]?.stringValue, url != site!.url {
            site = try await sites.site(url)
        }
        let endpoint = site!.endpoint
        let unreachable = site!.unreachable
        result.append(("engine", .string(site!.url)))
        let client = EngineClient(endpoint: endpoint, capabilities: .of(kind), model: body["model"]?.stringValue ?? "")
        let deadlineMs = plan["deadlineMs"]?.doubleValue ?? 0
        let remaining = max(0.001, deadlineMs / 1000 - (planned - began).seconds)
        let startedAt = Date().timeIntervalSince1970
        if let unreachable {
            return .object(
                result + [
                    ("outcome", .string("engine-error")), ("error", .string(unreachable.description)),
                    ("plan", Self.summary(plan)),
                ]
            )
        }
        // A preempt event naming this run stops it (the daemon made it yield to a higher-priority plan).
        var stop: (@Sendable () async -> Void)?
        if let watch { stop = { await watch.yielded(requestID) } }
        let completion: EngineClient.Completion
        do {
            completion = try await client.chat(
                body,
                requests: request["requests"]?.intValue ?? 1,
                deadline: .milliseconds(Int(remaining * 1000)),
                stop: stop
            )
        } catch let error as EngineError {
            return .object(
                result + [
                    ("outcome", .string("engine-error")), ("error", .string(error.description)),
                    ("plan", Self.summary(plan)),
                ]
            )
        }
        let ran = clock.now
        var graded: [GradedAnswer] = []
        for sample in completion.samples {
            let text = sample.text
            if let grade = grader.grade(text, question: question) {
                graded.append(grade)
            } else if case let .command(command) = grader {
                graded.append(try await AccuracyCollector.runGrader(command, output: text, question: question))
            }
        }
        let voted = Self.plurality(graded)
        let correct: Bool? =
            item.answer == nil
            ? nil : (voted.map { answer in graded.first { $0.answer == answer }?.correct ?? false } ?? false)
        let tokens = completion.samples.map(\.outputTokens)
        let latencyMs = ms(ran - planned)
        var report: JSONValue = .null
        if !noReport {
            var fields: [(String, JSONValue)] = [
                ("requestId", .string(requestID)), ("latencyMs", .number(latencyMs)), ("startedAt", .number(startedAt)),
            ]
            // A cut run says so: its latency is judged at the lengths streamed by then, which teach no length.
            if !tokens.isEmpty { fields.append(("sampleOutputTokens", .array(tokens.map(JSONValue.int)))) }
            if completion.cut { fields.append(("cut", .bool(true))) }
            // Made to yield by a higher-priority plan: nothing is learned from it.
            if completion.preempted { fields.append(("preempted", .bool(true))) }
            if let correct { fields.append(("correct", .bool(correct))) }
            let answer = try planner.call("io.edgeplan.Planner.Report", .object(fields))
            if let error = answer["error"]?.stringValue {
                report = .fields(["error": .string(error), "parameters": answer["parameters"] ?? .null])
            } else {
                report = answer["parameters"] ?? .null
            }
        }
        let reported = clock.now
        let engineOwnMs = completion.samples.compactMap(\.timings).map { $0.promptMS + $0.predictedMS }.max()
        result += [
            ("outcome", .string(completion.preempted ? "preempted" : completion.cut ? "cut" : "answered")),
            ("answer", voted.map(JSONValue.string) ?? .null),
            ("correct", correct.map(JSONValue.bool) ?? .null), ("plan", Self.summary(plan)),
            ("latencyMs", .number(latencyMs)), ("deadlineMs", .number(deadlineMs)),
            ("predictedLatencyMs", plan["predicted"]?["latencyMs"] ?? .null),
            ("predictedLatencyPercentileMs", plan["predicted"]?["latencyPercentileMs"] ?? .null),
            ("predictedEnergyJ", plan["predicted"]?["energyJ"] ?? .null),
            ("predictedMeanOutputTokens", plan["predicted"]?["meanOutputTokens"] ?? .null),
            ("energyJ", report["attributedEnergyJ"] ?? .null),
            ("sampleOutputTokens", .array(tokens.map(JSONValue.int))), ("startedAt", .number(startedAt)),
            // Samples the engine counted past max_tokens (each counted at the cap), by how many tokens.
            ("engineCountPastCap", completion.overCap.isEmpty ? .null : .array(completion.overCap.map(JSONValue.int))),
            (
                "timing",
                .fields([
                    "planMs": .number(ms(planned - began)), "engineMs": .number(latencyMs),
                    "answerMs": .number(ms(ran - began)),
                    "engineOwnMs": engineOwnMs.map(JSONValue.number) ?? .null, "reportMs": .number(ms(reported - ran)),
                    "totalMs": .number(ms(reported - began)),
                ])
            ),
            ("report", report),
        ]
        return .object(result)
    }

    /// The body with the prompt in place of the placeholder in every message.
    static func filling(_ body: JSONValue, prompt: String) -> JSONValue {
        switch body {
        case let .string(text): .string(text.replacingOccurrences(of: EngineRequest.promptPlaceholder, with: prompt))
        case let .array(items): .array(items.map { filling($0, prompt: prompt) })
        case let .object(pairs): .object(pairs.map { ($0.0, filling($0.1, prompt: prompt)) })
        default: body
        }
    }

    /// The answer most samples gave; a tie goes to the answer reached first, no answer at all is nil.
    static func plurality(_ graded: [GradedAnswer]) -> String? {
        var counts: [String: (count: Int, first: Int)] = [:]
        for (index, grade) in graded.enumerated() {
            guard let answer = grade.answer else { continue }
            counts[answer] = ((counts[answer]?.count ?? 0) + 1, counts[answer]?.first ?? index)
        }
        return counts.max { a, b in
            a.value.count != b.value.count ? a.value.count < b.value.count : a.value.first > b.value.first
        }?.key
    }

    static func summary(_ plan: JSONValue) -> JSONValue {
        .fields([
            "model": plan["model"] ?? .null, "quantization": plan["quantization"] ?? .null,
            "mode": plan["mode"] ?? .null,
            "tokenBudget": plan["tokenBudget"] ?? .null, "parallel": plan["parallel"] ?? .null,
            "explored": plan["explored"] ?? .null, "load": plan["load"] ?? .null,
        ])
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

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

extension Ask {
    static let defaultEngine = "http://127.0.0.1:8080"
}

/// An engine `ask` sends plans to, checked once: whether it answers, and its context per sequence.
struct EngineSite: Sendable {
    var url: String
    var endpoint: EngineEndpoint
    /// The engine's context per sequence: every plan's prompt and max_tokens must fit in it.
    var limits = EngineLimits()
    /// Why it does not answer: a request to an engine that is down would wait out its deadline.
    var unreachable: EngineError?
}

/// The engines `ask` has met, by URL: each is checked the first time a plan routes to it.
actor EngineSites {
    private var known: [String: EngineSite] = [:]

    func site(_ url: String) async throws -> EngineSite {
        if let site = known[url] { return site }
        var site = EngineSite(url: url, endpoint: try EngineEndpoint(url))
        do {
            let probe = EngineClient(endpoint: site.endpoint, capabilities: .llamaServer, model: "")
            try await probe.checkReachable()
            site.limits = try await probe.limits()
        } catch let error as EngineError {
            site.unreachable = error
        }
        known[url] = site
        return site
    }
}
