import EdgePlanCore
import Foundation

/// The daemon's side of the loop: its Plan and Report calls, as Varlink method names and parameters (the CLI makes
/// them over the daemon's socket).
public protocol PlannerCalls {
    func call(_ method: String, _ parameters: JSONValue) throws -> JSONValue
}

/// The scheduler's loop, in one place: plan on the daemon, run the plan on its engine, vote over the samples, report.
/// `edgeplan ask` parses its flags into this and prints what it returns.
public struct PlanLoop: Sendable {
    /// One request: its task class, prompt and limits, and the gold answer where there is one.
    public struct Request: Sendable {
        public var task: String
        public var prompt: String
        public var answer: String?
        public var options: [String]
        public var deadlineS: Double?
        public var energyJ: Double?

        public init(
            task: String,
            prompt: String,
            answer: String? = nil,
            options: [String] = [],
            deadlineS: Double? = nil,
            energyJ: Double? = nil
        ) {
            self.task = task
            self.prompt = prompt
            self.answer = answer
            self.options = options
            self.deadlineS = deadlineS
            self.energyJ = energyJ
        }
    }

    /// Where plans go when neither the caller nor the policy names an engine.
    public static let defaultEngine = "http://127.0.0.1:8080"

    /// Prompt tokens to plan for; nil counts them with the engine's tokenizer after its chat template.
    public var input: Int?
    /// The model name the engine serves, replacing the plan's.
    public var engineModel: String?
    /// Whether the outcome is reported to the daemon.
    public var report: Bool
    public var grader: AnswerGrader

    public init(input: Int? = nil, engineModel: String? = nil, report: Bool = true, grader: AnswerGrader) {
        self.input = input
        self.engineModel = engineModel
        self.report = report
        self.grader = grader
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// One request through the whole loop: planned (again, once its engine has counted the prompt), run on the
    /// engine its plan names (or `fixed`), voted, reported; the result as the JSON `edgeplan ask --json` prints.
    /// `yielded` returns once the daemon makes the run of a request id yield (its preempt event).
    public func run(
        _ item: Request,
        planner: some PlannerCalls,
        site fixed: EngineSite?,
        sites: EngineSites,
        yielded: (@Sendable (String) async -> Void)? = nil
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
        let remaining = max(0.001, deadlineMs / 1000 - Self.seconds(planned - began))
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
        if let yielded { stop = { await yielded(requestID) } }
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
        var reported: JSONValue = .null
        if report {
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
                reported = .fields(["error": .string(error), "parameters": answer["parameters"] ?? .null])
            } else {
                reported = answer["parameters"] ?? .null
            }
        }
        let reportedAt = clock.now
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
            ("energyJ", reported["attributedEnergyJ"] ?? .null),
            ("sampleOutputTokens", .array(tokens.map(JSONValue.int))), ("startedAt", .number(startedAt)),
            // Samples the engine counted past max_tokens (each counted at the cap), by how many tokens.
            ("engineCountPastCap", completion.overCap.isEmpty ? .null : .array(completion.overCap.map(JSONValue.int))),
            (
                "timing",
                .fields([
                    "planMs": .number(ms(planned - began)), "engineMs": .number(latencyMs),
                    "answerMs": .number(ms(ran - began)),
                    "engineOwnMs": engineOwnMs.map(JSONValue.number) ?? .null,
                    "reportMs": .number(ms(reportedAt - ran)),
                    "totalMs": .number(ms(reportedAt - began)),
                ])
            ),
            ("report", reported),
        ]
        return .object(result)
    }

    /// The body with the prompt in place of the placeholder in every message.
    public static func filling(_ body: JSONValue, prompt: String) -> JSONValue {
        switch body {
        case let .string(text): .string(text.replacingOccurrences(of: EngineRequest.promptPlaceholder, with: prompt))
        case let .array(items): .array(items.map { filling($0, prompt: prompt) })
        case let .object(pairs): .object(pairs.map { ($0.0, filling($0.1, prompt: prompt)) })
        default: body
        }
    }

    /// The answer most samples gave; a tie goes to the answer reached first, no answer at all is nil.
    public static func plurality(_ graded: [GradedAnswer]) -> String? {
        var counts: [String: (count: Int, first: Int)] = [:]
        for (index, grade) in graded.enumerated() {
            guard let answer = grade.answer else { continue }
            counts[answer] = ((counts[answer]?.count ?? 0) + 1, counts[answer]?.first ?? index)
        }
        return counts.max { a, b in
            a.value.count != b.value.count ? a.value.count < b.value.count : a.value.first > b.value.first
        }?.key
    }

    public static func summary(_ plan: JSONValue) -> JSONValue {
        .fields([
            "model": plan["model"] ?? .null, "quantization": plan["quantization"] ?? .null,
            "mode": plan["mode"] ?? .null,
            "tokenBudget": plan["tokenBudget"] ?? .null, "parallel": plan["parallel"] ?? .null,
            "explored": plan["explored"] ?? .null, "load": plan["load"] ?? .null,
        ])
    }

}

/// An engine the loop sends plans to, checked once: whether it answers, and its context per sequence.
public struct EngineSite: Sendable {
    public var url: String
    public var endpoint: EngineEndpoint
    /// The engine's context per sequence: every plan's prompt and max_tokens must fit in it.
    public var limits = EngineLimits()
    /// Why it does not answer: a request to an engine that is down would wait out its deadline.
    public var unreachable: EngineError?
}

/// The engines the loop has met, by URL: each is checked the first time a plan routes to it.
public actor EngineSites {
    private var known: [String: EngineSite] = [:]

    public init() {}

    public func site(_ url: String) async throws -> EngineSite {
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
