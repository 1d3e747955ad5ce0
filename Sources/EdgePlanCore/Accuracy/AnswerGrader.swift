import Foundation

/// What a grader made of one output: the answer it extracted (nil: none, the sample abstains from a vote) and
/// whether it is right.
public struct GradedAnswer: Sendable, Equatable {
    public var answer: String?
    public var correct: Bool

    public init(answer: String?, correct: Bool) {
        self.answer = answer
        self.correct = correct
    }

    public static let unanswered = GradedAnswer(answer: nil, correct: false)
}

/// How an output is graded against a question's answer. The answer is looked for after the thinking section (after
/// the last `</think>`), since reasoning mentions candidates before it settles.
public enum AnswerGrader: Sendable, Equatable {
    /// Multiple choice: the option letter after "Answer:" (or "the answer is", or `\boxed{}`), or a reply that is
    /// only a letter.
    case choice
    /// The final answer (after "Answer:", else the last line) equals the gold answer, ignoring case, surrounding
    /// space and a closing period.
    case exact
    /// The last number of the final answer is within `tolerance` of the gold answer, absolute, or relative when
    /// `relative` (given as a percentage).
    case numeric(tolerance: Double, relative: Bool)
    /// The last match of a regular expression (its first capture group, if it has one) equals the gold answer as
    /// `exact` compares.
    case regex(String)
    /// An external command decides: it reads `{"id", "output", "answer"}` as JSON on its standard input, prints the
    /// extracted answer on its first output line, and exits 0 for right and 1 for wrong. Run by the collector.
    case command(String)

    /// Parses `choice`, `exact`, `numeric[:TOL[%]]`, `regex:PATTERN` or `command:CMD`.
    public static func parse(_ text: String) throws -> AnswerGrader {
        let (name, argument): (Substring, String?) = {
            guard let colon = text.firstIndex(of: ":") else { return (Substring(text), nil) }
            return (text[..<colon], String(text[text.index(after: colon)...]))
        }()
        switch name {
        case "choice" where argument == nil: return .choice
        case "exact" where argument == nil: return .exact
        case "numeric":
            guard let argument else { return .numeric(tolerance: 1e-6, relative: false) }
            let relative = argument.hasSuffix("%")
            guard let value = Double(relative ? String(argument.dropLast()) : argument), value >= 0, value.isFinite
            else {
                throw EdgePlanError.invalidInput(
                    "numeric tolerance '\(argument)' is not a non-negative number (e.g. numeric:0.01 or numeric:1%)",
                    field: "--grader"
                )
            }
            return .numeric(tolerance: relative ? value / 100 : value, relative: relative)
        case "regex":
            guard let argument, !argument.isEmpty else {
                throw EdgePlanError.invalidInput("regex needs a pattern: regex:PATTERN", field: "--grader")
            }
            do { _ = try Regex(argument) } catch {
                throw EdgePlanError.invalidInput("regex '\(argument)' does not compile: \(error)", field: "--grader")
            }
            return .regex(argument)
        case "command":
            guard let argument, !argument.trimmed.isEmpty else {
                throw EdgePlanError.invalidInput("command needs a command line: command:CMD", field: "--grader")
            }
            return .command(argument)
        default:
            throw EdgePlanError.invalidInput(
                "unknown grader '\(text)'; use choice, exact, numeric[:TOL[%]], regex:PATTERN or command:CMD",
                field: "--grader"
            )
        }
    }

    public var name: String {
        switch self {
        case .choice: "choice"
        case .exact: "exact"
        case let .numeric(tolerance, relative): "numeric:\(relative ? "\(tolerance * 100)%" : "\(tolerance)")"
        case let .regex(pattern): "regex:\(pattern)"
        case let .command(command): "command:\(command)"
        }
    }

    /// Grades an output; nil for the command grader, which only the collector can run.
    public func grade(_ output: String, question: TaskQuestion) -> GradedAnswer? {
        let final = Self.afterThinking(output)
        switch self {
        case .choice:
            guard
                let letter = Self.choiceLetter(
                    final,
                    letters: question.letters.isEmpty ? Self.defaultLetters : question.letters
                )
            else { return .unanswered }
            return GradedAnswer(answer: letter, correct: letter == question.answer.uppercased())
        case .exact:
            let answer = Self.normalized(Self.finalAnswer(final))
            guard !answer.isEmpty else { return .unanswered }
            return GradedAnswer(answer: answer, correct: answer == Self.normalized(question.answer))
        case let .numeric(tolerance, relative):
            guard let value = Self.lastNumber(Self.finalAnswer(final)) else { return .unanswered }
            guard let gold = Self.lastNumber(question.answer) else {
                return GradedAnswer(answer: Self.format(value), correct: false)
            }
            let allowed = relative ? tolerance * abs(gold) : tolerance
            return GradedAnswer(answer: Self.format(value), correct: abs(value - gold) <= allowed)
        case let .regex(pattern):
            guard let regex = try? Regex(pattern), let match = final.matches(of: regex).last else { return .unanswered }
            let captured =
                match.output.count > 1 ? match.output[1].substring.map(String.init) : String(final[match.range])
            guard let captured else { return .unanswered }
            let answer = Self.normalized(captured)
            return GradedAnswer(answer: answer, correct: answer == Self.normalized(question.answer))
        case .command:
            return nil
        }
    }

    static let defaultLetters = ["A", "B", "C", "D"]

    /// The text after the last end of a thinking section.
    static func afterThinking(_ output: String) -> String {
        guard let range = output.range(of: "</think>", options: .backwards) else { return output }
        return String(output[range.upperBound...])
    }

    /// The text after the last "Answer:" (any case), else the last non-empty line.
    static func finalAnswer(_ text: String) -> String {
        if let range = text.range(of: "answer:", options: [.backwards, .caseInsensitive]) {
            return String(text[range.upperBound...].split(separator: "\n", omittingEmptySubsequences: true).first ?? "")
        }
        return String(text.split(separator: "\n", omittingEmptySubsequences: true).last ?? "")
    }

    static func choiceLetter(_ text: String, letters: [String]) -> String? {
        let valid = Set(letters)
        let patterns = [
            #"(?i:answer)\s*(?i:is)?\s*[:：]?\s*\**\(?([A-Z])\)?(?![A-Za-z])"#,
            #"\\boxed\{\s*([A-Z])\s*\}"#,
        ]
        for pattern in patterns {
            guard let regex = try? Regex(pattern) else { continue }
            for match in text.matches(of: regex).reversed() {
                if let letter = match.output[1].substring.map({ String($0).uppercased() }), valid.contains(letter) {
                    return letter
                }
            }
        }
        var bare = text.trimmed
        while let last = bare.last, ".):".contains(last) { bare.removeLast() }
        if bare.hasPrefix("(") { bare.removeFirst() }
        bare = bare.trimmed
        return valid.contains(bare) ? bare : nil
    }

    static func normalized(_ text: String) -> String {
        var value = text.trimmed.lowercased()
        while let last = value.last, last == "." || last == "*" { value.removeLast() }
        while value.hasPrefix("*") { value.removeFirst() }
        return value.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    static func lastNumber(_ text: String) -> Double? {
        guard let regex = try? Regex(#"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+"#) else { return nil }
        guard let match = text.matches(of: regex).last else { return nil }
        return Double(String(text[match.range]).replacingOccurrences(of: ",", with: ""))
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
