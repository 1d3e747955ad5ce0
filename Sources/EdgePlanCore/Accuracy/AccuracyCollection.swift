import Foundation

/// One sample of one question, as `accuracy collect` measured it: one unconstrained streamed run up to the largest
/// budget, and, for the thinking-budget and no-reasoning modes, the answer forced after the first B tokens of it.
public struct AccuracySample: Sendable, Equatable {
    public var question: String
    public var index: Int
    /// Output tokens of the unconstrained run (at most the largest budget).
    public var outputTokens: Int
    /// Whether the run ended by itself (end of sequence) rather than at the largest budget.
    public var finished: Bool
    /// The grade of the whole output (an unfinished run is graded too; its answer only counts where it finished).
    public var graded: GradedAnswer
    /// By budget (0: no reasoning at all): the answer forced after that many tokens of thinking, and its length.
    public var forced: [Int: Forced]
    public var latencyS: Double

    public struct Forced: Sendable, Equatable {
        public var graded: GradedAnswer
        public var answerTokens: Int

        public init(graded: GradedAnswer, answerTokens: Int) {
            self.graded = graded
            self.answerTokens = answerTokens
        }
    }

    public init(
        question: String,
        index: Int,
        outputTokens: Int,
        finished: Bool,
        graded: GradedAnswer,
        forced: [Int: Forced] = [:],
        latencyS: Double
    ) {
        self.question = question
        self.index = index
        self.outputTokens = outputTokens
        self.finished = finished
        self.graded = graded
        self.forced = forced
        self.latencyS = latencyS
    }

    /// The outcome and output length of this sample run in `mode` at `budget`: one run gives every budget's outcome.
    /// - hard at B: the answer if the run ended within B tokens, else none (the cap cut it off).
    /// - thinking-budget at B: the same when it ended within B, else the answer forced after B tokens.
    /// - no-reasoning: the answer forced at once.
    /// - base: the run as it is (only meaningful when every run finished).
    /// `answerTokens` replaces the forced answers' measured lengths (a collection that restricted its answers to the
    /// options measured one token, while a plan's answer is not restricted).
    public func outcome(
        mode: LengthMode,
        budget: Int?,
        answerTokens: Int? = nil
    ) -> (graded: GradedAnswer, tokens: Int)? {
        let endedWithin = budget.map { finished && outputTokens <= $0 } ?? finished
        switch mode {
        case .hard:
            guard let budget else { return nil }
            return endedWithin ? (graded, outputTokens) : (.unanswered, budget)
        case .thinkingBudget:
            guard let budget else { return nil }
            if endedWithin { return (graded, outputTokens) }
            return forced[budget].map { ($0.graded, budget + (answerTokens ?? $0.answerTokens)) }
        case .noReasoning:
            return forced[0].map { ($0.graded, answerTokens ?? $0.answerTokens) }
        case .base, .direct:
            return (graded, outputTokens)
        case .soft:
            return nil
        }
    }
}

/// What `accuracy collect` has measured, cell by cell: accuracy of each mode × budget × k with its interval, the
/// mean output length, and the vote model's prediction beside the measured majority vote.
public struct AccuracyCollection: Sendable {
    public struct Cell: Sendable, Equatable {
        public var mode: LengthMode
        public var budget: Int?
        public var samples: Int
        /// Accuracy by resampled majority vote at this many samples (1: the single-sample accuracy).
        public var accuracy: Double
        /// The 80 % interval over the questions.
        public var low: Double
        public var high: Double
        public var questions: Int
        public var meanOutputTokens: Double
        /// Share of samples that gave no answer.
        public var abstention: Double
        /// The vote model's prediction from the single-sample accuracy (nil at k = 1).
        public var predicted: Double?

        public var halfWidthPoints: Double { (high - low) / 2 * 100 }
    }

    public let cells: [Cell]

    /// Tallies `samples` for each mode and budget, at each k up to the samples a question has. `concentration` and
    /// `options` feed the vote model's prediction; `draws` random subsets per question estimate each k's vote.
    /// `answerTokens`, when given, is the length of every forced answer in the mean lengths (see
    /// ``AccuracySample/outcome(mode:budget:answerTokens:)``).
    public init(
        samples: [AccuracySample],
        modes: [LengthMode],
        budgets: [Int],
        votes: [Int],
        options: Int,
        concentration: Double,
        draws: Int = 400,
        seed: UInt64 = 1,
        answerTokens: Int? = nil
    ) {
        let byQuestion = Dictionary(grouping: samples, by: \.question).mapValues { $0.sorted { $0.index < $1.index } }
        let questions = byQuestion.keys.sorted()
        var generator = SplitMix64(seed: seed)
        var cells: [Cell] = []
        for mode in modes {
            let cellBudgets: [Int?] =
                switch mode {
                case .hard, .thinkingBudget, .soft: budgets.map { $0 }
                case .noReasoning, .base, .direct: [nil]
                }
            for budget in cellBudgets {
                var outcomes: [[GradedAnswer]] = []
                var tokens: [Double] = []
                for question in questions {
                    let results = byQuestion[question]!.compactMap {
                        $0.outcome(mode: mode, budget: budget, answerTokens: answerTokens)
                    }
                    guard !results.isEmpty else { continue }
                    outcomes.append(results.map(\.graded))
                    tokens += results.map { Double($0.tokens) }
                }
                guard !outcomes.isEmpty else { continue }
                let all = outcomes.flatMap { $0 }
                let single = Double(all.filter(\.correct).count) / Double(all.count)
                // A question's single-sample accuracy is the share of its samples that are right: each question counts once.
                let perQuestion = outcomes.map { Double($0.filter(\.correct).count) / Double($0.count) }
                let abstention = Double(all.filter { $0.answer == nil }.count) / Double(all.count)
                let meanTokens = tokens.reduce(0, +) / Double(tokens.count)
                let most = outcomes.map(\.count).min()!
                for k in votes where k <= most {
                    let accuracy: Double
                    if k == 1 {
                        accuracy = perQuestion.reduce(0, +) / Double(perQuestion.count)
                    } else {
                        var total = 0.0
                        for answers in outcomes {
                            total += Self.voteAccuracy(answers, k: k, draws: draws, using: &generator)
                        }
                        accuracy = total / Double(outcomes.count)
                    }
                    let interval = AccuracyEstimate.measured(accuracy, questions: outcomes.count)
                    let predicted =
                        k == 1
                        ? nil
                        : PluralityVote.accuracy(
                            single: single,
                            samples: k,
                            abstention: abstention,
                            concentration: concentration,
                            options: options
                        )
                    cells.append(
                        Cell(
                            mode: mode,
                            budget: budget,
                            samples: k,
                            accuracy: accuracy,
                            low: interval.low,
                            high: interval.high,
                            questions: outcomes.count,
                            meanOutputTokens: meanTokens,
                            abstention: abstention,
                            predicted: predicted
                        )
                    )
                }
            }
        }
        self.cells = cells
    }

    /// Whether every cell's 80 % interval is within `points` of its accuracy.
    public func precise(within points: Double) -> Bool {
        !cells.isEmpty && cells.allSatisfy { $0.halfWidthPoints <= points }
    }

    /// The widest half-interval, in points.
    public var widestHalfWidthPoints: Double { cells.map(\.halfWidthPoints).max() ?? .infinity }

    /// Chance that a plurality vote over `k` of these answers, drawn without replacement, is right; ties break at
    /// random and a vote with no answer at all is wrong.
    static func voteAccuracy(_ answers: [GradedAnswer], k: Int, draws: Int, using generator: inout SplitMix64) -> Double
    {
        let correct = answers.first(where: \.correct)?.answer
        var wins = 0.0
        var indices = Array(answers.indices)
        for _ in 0..<draws {
            // A partial Fisher-Yates shuffle draws k distinct samples.
            for i in 0..<k {
                let j = i + Int(generator.next() % UInt64(indices.count - i))
                indices.swapAt(i, j)
            }
            var counts: [String: Int] = [:]
            for i in 0..<k { if let answer = answers[indices[i]].answer { counts[answer, default: 0] += 1 } }
            guard let top = counts.values.max(), let correct, let mine = counts[correct], mine == top else { continue }
            let tied = counts.values.filter { $0 == top }.count
            wins += 1 / Double(tied)
        }
        return wins / Double(draws)
    }

    /// The table rows: each mode and budget's single-sample accuracy and mean length, with `source` on every row.
    public func records(variant: VariantID, source: String) -> [AccuracyRecord] {
        cells.filter { $0.samples == 1 && $0.mode != .soft }.map { cell in
            AccuracyRecord(
                variant: variant,
                mode: cell.mode,
                budgetTokens: cell.budget,
                capped: cell.mode == .hard,
                accuracy: cell.accuracy,
                meanOutputTokens: min(
                    max(cell.meanOutputTokens, 0.1),
                    cell.mode.lengthCap(budget: cell.budget, capped: cell.mode == .hard).map(Double.init) ?? .infinity
                ),
                source: source
            )
        }
    }
}

/// The samples file of `accuracy collect`: a header line that fixes the design, then one line per sample. Appended
/// a question at a time and made durable, so a collection resumes after any stop with nothing lost or drawn twice.
public enum AccuracySamplesFile {
    /// What a collection measures; resuming with a different design is refused, naming the difference.
    public struct Header: Sendable, Equatable {
        public var model: String
        public var task: String
        public var grader: String
        public var budgets: [Int]
        public var forcedBudgets: [Int]
        public var samplesPerQuestion: Int
        public var constrained: Bool
        public var engine: String

        public init(
            model: String,
            task: String,
            grader: String,
            budgets: [Int],
            forcedBudgets: [Int],
            samplesPerQuestion: Int,
            constrained: Bool,
            engine: String
        ) {
            self.model = model
            self.task = task
            self.grader = grader
            self.budgets = budgets
            self.forcedBudgets = forcedBudgets
            self.samplesPerQuestion = samplesPerQuestion
            self.constrained = constrained
            self.engine = engine
        }

        var json: JSONValue {
            .fields([
                "kind": .string("accuracy-samples"), "model": .string(model), "task": .string(task),
                "grader": .string(grader),
                "budgets": .array(budgets.map { .int($0) }), "forced_budgets": .array(forcedBudgets.map { .int($0) }),
                "samples_per_question": .int(samplesPerQuestion), "constrained": .bool(constrained),
                "engine": .string(engine),
            ])
        }

        /// The first field in which `other` differs, as `name: mine vs other`.
        public func difference(from other: Header) -> String? {
            let pairs: [(String, String, String)] = [
                ("model", model, other.model), ("task", task, other.task), ("grader", grader, other.grader),
                ("budgets", "\(budgets)", "\(other.budgets)"),
                ("forced budgets", "\(forcedBudgets)", "\(other.forcedBudgets)"),
                ("samples per question", "\(samplesPerQuestion)", "\(other.samplesPerQuestion)"),
                ("constrained answers", "\(constrained)", "\(other.constrained)"),
            ]
            return pairs.first { $0.1 != $0.2 }.map { "\($0.0): \($0.1) in the file, \($0.2) asked" }
        }
    }

    public static func headerLine(_ header: Header) -> [UInt8] { header.json.utf8() + [0x0A] }

    /// The lines of one question's samples, written together.
    public static func lines(_ samples: [AccuracySample], time: Double) -> [UInt8] {
        var bytes: [UInt8] = []
        for sample in samples {
            var fields: [(String, JSONValue)] = [
                ("question", .string(sample.question)), ("sample", .int(sample.index)),
                ("output_tokens", .int(sample.outputTokens)),
                ("finished", .bool(sample.finished)), ("answer", sample.graded.answer.map(JSONValue.string) ?? .null),
                ("correct", .bool(sample.graded.correct)), ("latency_s", .number(sample.latencyS)),
            ]
            if !sample.forced.isEmpty {
                fields.append(
                    (
                        "forced",
                        .array(
                            sample.forced.keys.sorted().map { budget in
                                let forced = sample.forced[budget]!
                                return .fields([
                                    "budget": .int(budget),
                                    "answer": forced.graded.answer.map(JSONValue.string) ?? .null,
                                    "correct": .bool(forced.graded.correct), "answer_tokens": .int(forced.answerTokens),
                                ])
                            }
                        )
                    )
                )
            }
            fields.append(("time", .number(time)))
            bytes += JSONValue.object(fields).utf8() + [0x0A]
        }
        return bytes
    }

    /// Reads a samples file: its header (nil when empty) and its samples. Errors name the file and line.
    public static func read(_ bytes: [UInt8], file: String) throws -> (header: Header?, samples: [AccuracySample]) {
        var header: Header?
        var samples: [AccuracySample] = []
        var lineNumber = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            guard !line.isEmpty else { continue }
            let row: JSONValue
            do { row = try JSONValue.parse(line) } catch let error as EdgePlanError {
                throw EdgePlanError.invalidFile(error.message, file: file, line: lineNumber)
            }
            func int(_ key: String, in value: JSONValue = row) throws -> Int {
                guard let number = value[key]?.intValue else {
                    throw EdgePlanError.invalidFile(
                        "no whole number '\(key)'",
                        file: file,
                        line: lineNumber,
                        field: key
                    )
                }
                return number
            }
            if row["kind"]?.stringValue == "accuracy-samples" {
                guard header == nil else {
                    throw EdgePlanError.invalidFile("a second header", file: file, line: lineNumber)
                }
                func ints(_ key: String) -> [Int] {
                    if case let .array(items)? = row[key] { return items.compactMap(\.intValue) }
                    return []
                }
                header = Header(
                    model: row["model"]?.stringValue ?? "",
                    task: row["task"]?.stringValue ?? "",
                    grader: row["grader"]?.stringValue ?? "",
                    budgets: ints("budgets"),
                    forcedBudgets: ints("forced_budgets"),
                    samplesPerQuestion: try int("samples_per_question"),
                    constrained: row["constrained"] == .bool(true),
                    engine: row["engine"]?.stringValue ?? ""
                )
                continue
            }
            guard header != nil else {
                throw EdgePlanError.invalidFile("a sample before the header", file: file, line: lineNumber)
            }
            guard let question = row["question"]?.stringValue else {
                throw EdgePlanError.invalidFile("no 'question'", file: file, line: lineNumber, field: "question")
            }
            var forced: [Int: AccuracySample.Forced] = [:]
            if case let .array(items)? = row["forced"] {
                for item in items {
                    forced[try int("budget", in: item)] = AccuracySample.Forced(
                        graded: GradedAnswer(
                            answer: item["answer"]?.stringValue,
                            correct: item["correct"] == .bool(true)
                        ),
                        answerTokens: try int("answer_tokens", in: item)
                    )
                }
            }
            samples.append(
                AccuracySample(
                    question: question,
                    index: try int("sample"),
                    outputTokens: try int("output_tokens"),
                    finished: row["finished"] == .bool(true),
                    graded: GradedAnswer(answer: row["answer"]?.stringValue, correct: row["correct"] == .bool(true)),
                    forced: forced,
                    latencyS: row["latency_s"]?.doubleValue ?? 0
                )
            )
        }
        return (header, samples)
    }
}
