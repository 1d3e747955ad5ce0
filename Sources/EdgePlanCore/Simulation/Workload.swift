import Foundation

/// One task a robot asks the planner for: when it arrives, its class, its limits and its prompt length.
public struct WorkloadTask: Sendable, Equatable {
    /// Seconds since the start of the workload.
    public var arrivalS: Double
    public var taskClass: String
    /// Nil takes the policy's default for the class.
    public var deadlineS: Double?
    public var energyBudgetJ: Double?
    public var inputTokens: Int?

    public init(
        arrivalS: Double,
        taskClass: String,
        deadlineS: Double? = nil,
        energyBudgetJ: Double? = nil,
        inputTokens: Int? = nil
    ) {
        self.arrivalS = arrivalS
        self.taskClass = taskClass
        self.deadlineS = deadlineS
        self.energyBudgetJ = energyBudgetJ
        self.inputTokens = inputTokens
    }

    /// The JSON-lines form: `{"at": "90s", "task": "grasp-plan", "deadline": "8s", "energy": "200J", "input_tokens": 400}`.
    public var jsonLine: String {
        var fields: [(String, JSONValue)] = [
            ("at", .string("\(arrivalS.significantDigits(9))s")), ("task", .string(taskClass)),
        ]
        if let deadlineS { fields.append(("deadline", .string("\(deadlineS.significantDigits(9))s"))) }
        if let energyBudgetJ { fields.append(("energy", .string("\(energyBudgetJ.significantDigits(9))J"))) }
        if let inputTokens { fields.append(("input_tokens", .int(inputTokens))) }
        return JSONValue.object(fields).serialized()
    }
}

/// Reads workloads: JSON lines (streamed, one task a line) or a YAML file (`kind: workload`, `tasks: [...]`).
/// Times and energies need units; a bad line is an error naming file, line and field, and nothing is simulated.
public enum WorkloadDecoder {
    static let keys: Set<String> = ["at", "task", "deadline", "energy", "input_tokens"]

    /// One JSON-lines line; nil for a blank line or a `#` comment.
    public static func decodeLine(_ line: some StringProtocol, file: String, lineNumber: Int) throws -> WorkloadTask? {
        let trimmed = line.trimmed
        if trimmed.isEmpty || trimmed.hasPrefix("#") { return nil }
        func fail(_ message: String, _ field: String? = nil) -> EdgePlanError {
            EdgePlanError(.invalidInput, message, file: file, line: lineNumber, field: field)
        }
        let value: JSONValue
        do { value = try JSONValue.parse(Array(trimmed.utf8)) } catch { throw fail("not a JSON object: \(error)") }
        guard case let .object(pairs) = value else { throw fail("each line must be a JSON object") }
        for (key, _) in pairs where !keys.contains(key) {
            throw fail("unknown field '\(key)'; use \(keys.sorted().joined(separator: ", "))", key)
        }
        func string(_ key: String) throws -> String? {
            guard let item = value[key], !item.isNull else { return nil }
            guard let text = item.stringValue else {
                throw fail("'\(key)' must be a string with a unit, e.g. \"8s\"", key)
            }
            return text
        }
        guard let at = try string("at") else {
            throw fail("missing 'at' (arrival time with a unit, e.g. \"90s\")", "at")
        }
        guard let task = try string("task"), !task.isEmpty else {
            throw fail("missing 'task' (the task class)", "task")
        }
        do {
            let input: Int?
            if let raw = value["input_tokens"], !raw.isNull {
                guard let tokens = raw.intValue, (1...PlanRequest.maxInputTokens).contains(tokens) else {
                    throw fail(
                        "'input_tokens' must be a whole number of tokens in 1...\(PlanRequest.maxInputTokens)",
                        "input_tokens"
                    )
                }
                input = tokens
            } else {
                input = nil
            }
            return WorkloadTask(
                arrivalS: try QuantityParser.seconds(at, field: "at", requireUnit: true, allowZero: true),
                taskClass: task,
                deadlineS: try string("deadline").map {
                    try QuantityParser.seconds($0, field: "deadline", requireUnit: true)
                },
                energyBudgetJ: try string("energy").map {
                    try QuantityParser.joules($0, field: "energy", requireUnit: true)
                },
                inputTokens: input
            )
        } catch let error as EdgePlanError where error.line == nil {
            throw EdgePlanError(error.code, error.message, file: file, line: lineNumber, field: error.field)
        }
    }

    /// A YAML workload.
    public static func decodeYAML(_ text: String, file: String) throws -> [WorkloadTask] {
        var root = try YAMLObject.parse(text, file: file)
        try root.expectKind("workload")
        var tasks: [WorkloadTask] = []
        for var row in try root.objects("tasks") {
            func quantity(_ key: String, _ parse: (String) throws -> Double) throws -> Double? {
                guard let raw = try row.optionalString(key) else { return nil }
                do { return try parse(raw) } catch let error as EdgePlanError { throw row.error(key, error.message) }
            }
            guard
                let at = try quantity(
                    "at",
                    { try QuantityParser.seconds($0, field: "at", requireUnit: true, allowZero: true) }
                )
            else {
                throw row.error("at", "missing 'at' (arrival time with a unit)")
            }
            let task = WorkloadTask(
                arrivalS: at,
                taskClass: try row.string("task"),
                deadlineS: try quantity(
                    "deadline",
                    { try QuantityParser.seconds($0, field: "deadline", requireUnit: true) }
                ),
                energyBudgetJ: try quantity(
                    "energy",
                    { try QuantityParser.joules($0, field: "energy", requireUnit: true) }
                ),
                inputTokens: try row.optionalInt("input_tokens", in: 1...PlanRequest.maxInputTokens)
            )
            if let previous = tasks.last, task.arrivalS < previous.arrivalS {
                throw row.error(
                    "at",
                    "arrival times must not go backwards (\(task.arrivalS) s after \(previous.arrivalS) s)"
                )
            }
            tasks.append(task)
            try row.finish()
        }
        try root.finish()
        return tasks
    }
}
