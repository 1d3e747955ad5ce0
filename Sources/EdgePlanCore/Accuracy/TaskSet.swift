/// One question of a task set: what the model is asked and the answer a grader compares with.
public struct TaskQuestion: Sendable, Equatable {
    public var id: String
    public var prompt: String
    public var answer: String
    /// The options of a multiple-choice question, in letter order (A, B, …); empty for free-form questions.
    public var options: [String]

    public init(id: String, prompt: String, answer: String, options: [String] = []) {
        self.id = id
        self.prompt = prompt
        self.answer = answer
        self.options = options
    }

    /// The option letters of a multiple-choice question.
    public var letters: [String] { options.indices.map { String(UnicodeScalar(UInt8(65 + $0))) } }

    /// The prompt with its options listed under it, one letter each, as multiple-choice benchmarks ask.
    public var renderedPrompt: String {
        guard !options.isEmpty else { return prompt }
        return prompt + "\n" + zip(letters, options).map { "\($0). \($1)" }.joined(separator: "\n")
    }
}

/// A task set: JSON lines, one question each, with `id`, `prompt`, `answer` and optionally `options`.
public enum TaskSet {
    /// Parses a task set. Every problem names the file and line: a line that is not a JSON object, a missing or
    /// empty field, a repeated id, more than 26 options, a multiple-choice answer that is no option's letter.
    public static func parse(_ text: String, file: String) throws -> [TaskQuestion] {
        var questions: [TaskQuestion] = []
        var seen: [String: Int] = [:]
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = offset + 1
            let trimmed = raw.trimmed
            if trimmed.isEmpty { continue }
            let value: JSONValue
            do { value = try JSONValue.parse(Array(trimmed.utf8)) } catch {
                throw EdgePlanError.invalidFile("not a JSON object: \(error)", file: file, line: line)
            }
            guard case .object = value else {
                throw EdgePlanError.invalidFile("a question is a JSON object", file: file, line: line)
            }
            func string(_ key: String) throws -> String {
                guard let field = value[key], field != .null else {
                    throw EdgePlanError.invalidFile("the question has no '\(key)'", file: file, line: line, field: key)
                }
                let text =
                    field.stringValue
                    ?? (field.intValue.map(String.init) ?? field.doubleValue.map { JSONValue.number($0).serialized() })
                guard let text, !text.trimmed.isEmpty else {
                    throw EdgePlanError.invalidFile(
                        "'\(key)' must be a non-empty string",
                        file: file,
                        line: line,
                        field: key
                    )
                }
                return text
            }
            let id = try string("id")
            if let first = seen[id] {
                throw EdgePlanError.invalidFile(
                    "id '\(id)' repeats the question on line \(first)",
                    file: file,
                    line: line,
                    field: "id"
                )
            }
            seen[id] = line
            var options: [String] = []
            if let field = value["options"], field != .null {
                guard case let .array(items) = field, !items.isEmpty,
                    let texts = Optional(items.compactMap(\.stringValue)), texts.count == items.count
                else {
                    throw EdgePlanError.invalidFile(
                        "'options' must be a non-empty list of strings",
                        file: file,
                        line: line,
                        field: "options"
                    )
                }
                guard texts.count <= 26 else {
                    throw EdgePlanError.invalidFile(
                        "\(texts.count) options: at most 26 (letters A to Z)",
                        file: file,
                        line: line,
                        field: "options"
                    )
                }
                options = texts
            }
            var question = TaskQuestion(
                id: id,
                prompt: try string("prompt"),
                answer: try string("answer"),
                options: options
            )
            if !options.isEmpty {
                let letters = question.letters
                let answer = question.answer.trimmed
                if let letter = letters.first(where: { $0 == answer.uppercased() }) {
                    question.answer = letter
                } else if let index = options.firstIndex(of: answer) {
                    question.answer = letters[index]
                } else {
                    throw EdgePlanError.invalidFile(
                        "answer '\(answer)' is neither an option's letter (\(letters.joined(separator: ", "))) nor an option's text",
                        file: file,
                        line: line,
                        field: "answer"
                    )
                }
            }
            questions.append(question)
        }
        guard !questions.isEmpty else { throw EdgePlanError.invalidFile("the task set has no questions", file: file) }
        return questions
    }
}
