import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import EdgePlanEngine
import Foundation

/// `edgeplan accuracy`: measure a model's accuracy on a task set.
struct AccuracyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accuracy",
        abstract: "Measure a model's accuracy on a task set from a running engine.",
        subcommands: [AccuracyCollect.self]
    )
}

/// `edgeplan accuracy collect`: evaluates a task set on an engine across modes × budgets × k.
struct AccuracyCollect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Evaluate a task set on a running engine across length modes, token budgets and sample counts.",
        discussion: """
            The task set is JSON lines with `id`, `prompt`, `answer` and optionally `options` (multiple choice, letters A,
            B, ... in order). Each question gets K samples in one streamed run up to the largest budget: that one run gives
            the hard-cap outcome at every smaller budget, and the answer forced after B tokens of thinking gives the
            thinking-budget outcome (and after none, the no-reasoning one). Majority-vote accuracy at every k up to K comes
            from resampling the K samples. Collection stops when every cell's 80 % interval is within --precision points,
            when --time-budget is spent, or when the questions run out; every question's samples are appended to -o and
            made durable first, so a stopped collection resumes where it stopped.

            Writes the accuracy table, in the profile's format, into --profile's accuracy/<task>.yaml (this model's rows
            replaced, others kept); the model must be in the profile (`edgeplan calibrate` puts it there).
            """
    )

    @Option(help: "The engine: http://HOST:PORT or unix:/PATH.") var engine: String = "http://127.0.0.1:8080"
    @Option(help: "Engine kind: \(EngineKind.allCases.map(\.rawValue).joined(separator: ", ")).") var engineKind:
        String = "llama-server"
    @Option(help: "Model name in the profile.") var model: String
    @Option(help: "Quantization of the model in the profile.") var quantization: String = "fp16"
    @Option(help: "Model name the engine serves (default: --model).") var engineModel: String?
    @Option(help: "The task set: JSON lines with id, prompt, answer and optional options.") var tasks: String
    @Option(help: "Task class the table is for (default: the task set's file name).") var task: String?
    @Option(
        help:
            "Grader: choice, exact, numeric[:TOL[%]], regex:PATTERN or command:CMD (default: choice for multiple choice, else exact)."
    )
    var grader: String?
    @Option(help: "Token budgets, comma-separated; the largest caps every run.") var budgets: String = "256,512,1024"
    @Option(help: "Length modes, comma-separated: hard, thinking-budget, no-reasoning, base.") var modes: String =
        "hard,thinking-budget,no-reasoning"
    @Option(parsing: .unconditional, help: "Samples per question (K): majority vote is measured at every k up to it.")
    var samples: Int = 4
    @Flag(
        help: "Restrict a forced answer to the options' letters (multiple choice; the engine's grammar or choice list)."
    )
    var constrainAnswer = false
    @Option(
        help:
            "The prompt around a question, with {prompt} where it goes (default: the engine's chat template for the model)."
    )
    var template: String?
    @Option(help: "The tag that ends the model's thinking.") var thinkEnd: String = "</think>"
    @Option(parsing: .unconditional, help: "Sampling temperature of every sample.") var temperature: Double = 0.6
    @Option(parsing: .unconditional, help: "Stop once every cell's 80 % interval is within this many points.")
    var precision: Double = 5
    @Option(help: "Stop asking new questions after this long (e.g. 30min); run again to go on.") var timeBudget: String?
    @Option(parsing: .unconditional, help: "Ask at most this many questions of the set.") var maxQuestions: Int?
    @Option(name: .shortAndLong, help: "Samples file to write, or to resume.") var output: String
    @Option(help: "Profile directory whose accuracy/<task>.yaml receives the table.") var profile: String?

    func validate() throws {
        do {
            _ = try EngineKind.named(engineKind)
            _ = try EngineEndpoint(engine)
            if let grader { _ = try AnswerGrader.parse(grader) }
            _ = try parsedModes()
            if let timeBudget { _ = try QuantityParser.seconds(timeBudget, field: "--time-budget") }
        } catch let error as EdgePlanError {
            throw ValidationError(error.message)
        }
        guard Quantization(rawValue: quantization) != nil else {
            throw ValidationError(Quantization.rule(quantization))
        }
        _ = try Collect.integers(budgets, "--budgets")
        guard (1...64).contains(samples) else { throw ValidationError("--samples takes 1 to 64, not \(samples)") }
        guard precision > 0 else { throw ValidationError("--precision must be positive points, not \(precision)") }
        if let template, !template.contains("{prompt}") { throw ValidationError("--template must contain {prompt}") }
    }

    func parsedModes() throws -> [LengthMode] {
        try modes.split(separator: ",").map { raw in
            let name = raw.trimmed
            guard let mode = LengthMode(rawValue: name), [.hard, .thinkingBudget, .noReasoning, .base].contains(mode)
            else {
                throw EdgePlanError.invalidInput(
                    "--modes takes hard, thinking-budget, no-reasoning and base, not '\(name)'",
                    field: "--modes"
                )
            }
            return mode
        }
    }

    func run() async throws {
        try await reportingErrors {
            let kind = try EngineKind.named(engineKind)
            let capabilities = EngineCapabilities.of(kind)
            let text: String
            do { text = try String(contentsOfFile: tasks, encoding: .utf8) } catch {
                throw EdgePlanError(.io, "cannot read the task set: \(error.localizedDescription)", file: tasks)
            }
            var questions = try TaskSet.parse(text, file: tasks)
            if let maxQuestions { questions = Array(questions.prefix(maxQuestions)) }
            let multipleChoice = questions.allSatisfy { !$0.options.isEmpty }
            let answerGrader = try grader.map(AnswerGrader.parse) ?? (multipleChoice ? .choice : .exact)
            if constrainAnswer && !multipleChoice {
                throw EdgePlanError.invalidInput(
                    "--constrain-answer restricts answers to options: every question needs 'options'",
                    field: "--constrain-answer"
                )
            }
            if constrainAnswer && capabilities.choiceConstraint == nil {
                throw EdgePlanError.invalidInput(
                    "\(kind.rawValue) cannot restrict an answer to given choices",
                    field: "--constrain-answer"
                )
            }
            let modes = try parsedModes()
            let budgetList = try Collect.integers(budgets, "--budgets").sorted()
            var forced: [Int] = []
            if modes.contains(.noReasoning) { forced.append(0) }
            if modes.contains(.thinkingBudget) { forced += budgetList }
            let taskName = task ?? ((tasks as NSString).lastPathComponent as NSString).deletingPathExtension
            let variant = VariantID(model: model, quantization: Quantization(rawValue: quantization)!)
            let client = EngineClient(
                endpoint: try EngineEndpoint(engine),
                capabilities: capabilities,
                model: engineModel ?? model
            )
            let described = try await client.describe()
            let engineInfo = EngineInfo(described, kind: kind)
            let around: (prefix: String, suffix: String)
            if let template {
                let range = template.range(of: "{prompt}")!
                around = (String(template[..<range.lowerBound]), String(template[range.upperBound...]))
            } else if let rendered = try await client.promptTemplate() {
                around = rendered
            } else {
                FileHandle.standardError.write(
                    Data(
                        "warning: \(kind.rawValue) renders no chat template: questions go as they are (give --template)\n"
                            .utf8
                    )
                )
                around = ("", "\n")
            }
            let header = AccuracySamplesFile.Header(
                model: variant.description,
                task: taskName,
                grader: answerGrader.name,
                budgets: budgetList,
                forcedBudgets: forced,
                samplesPerQuestion: samples,
                constrained: constrainAnswer,
                engine: "\(kind.rawValue) \(engineInfo.version)"
            )
            let options = multipleChoice ? (questions.map(\.options.count).max() ?? 4) : 10
            let concentration = try concentrationOf(variant)
            let votes = Self.voteCounts(upTo: samples)
            let tally: @Sendable ([AccuracySample]) -> AccuracyCollection = { drawn in
                AccuracyCollection(
                    samples: drawn,
                    modes: modes,
                    budgets: budgetList,
                    votes: votes,
                    options: options,
                    concentration: concentration,
                    draws: 200
                )
            }
            var collector = AccuracyCollector(
                client: client,
                header: header,
                questions: questions,
                grader: answerGrader,
                promptPrefix: around.prefix,
                promptSuffix: around.suffix,
                temperature: temperature,
                samplesPath: output,
                tally: tally,
                now: RailSampler.monotonicSeconds
            )
            collector.thinkEnd = thinkEnd
            collector.timeBudgetS = try timeBudget.map { try QuantityParser.seconds($0, field: "--time-budget") }
            collector.precisionPoints = precision
            print(
                "evaluating \(variant) on \(taskName) (\(questions.count) questions, grader \(answerGrader.name)) on \(client.endpoint) (\(header.engine))"
            )
            print(
                "  budgets \(budgetList.map(String.init).joined(separator: ", ")); modes \(modes.map(\.rawValue).joined(separator: ", ")); \(samples) samples a question\(constrainAnswer ? "; answers restricted to the options" : "")"
            )
            let bar = LockedProgress(total: questions.count)
            let summary = try await collector.run { done, _, id in bar.update(done: done, label: id) }
            // Restricted answers are one token; a plan's answer is not restricted, so its rows assume the allowance.
            let collection = AccuracyCollection(
                samples: summary.samples,
                modes: modes,
                budgets: budgetList,
                votes: votes,
                options: options,
                concentration: concentration,
                answerTokens: constrainAnswer ? LengthMode.answerAllowanceTokens : nil
            )
            print(
                "asked \(summary.measuredQuestions) questions in \(String(format: "%.1f", summary.engineTimeS)) s of engine time (\(summary.forcedRequests) forced answers); \(summary.skippedQuestions) already in \(output); stopped: \(summary.stop.rawValue)"
            )
            Self.show(collection)
            guard let profile else { return }
            let questionsAsked = Set(summary.samples.map(\.question)).count
            guard questionsAsked > 0 else {
                throw EdgePlanError.invalidInput("no question was asked: no table to write", field: "--profile")
            }
            try write(
                collection,
                questions: questionsAsked,
                options: options,
                variant: variant,
                task: taskName,
                engine: header.engine,
                typicalInput: Self.typicalInput(questions, around: around),
                to: profile
            )
        }
    }

    static func voteCounts(upTo k: Int) -> [Int] {
        var counts: [Int] = []
        var value = 1
        while value < k {
            counts.append(value)
            value *= 2
        }
        counts.append(k)
        return counts
    }

    /// Prompt length in tokens, estimated at four bytes a token.
    static func typicalInput(_ questions: [TaskQuestion], around: (prefix: String, suffix: String)) -> Int {
        let bytes = questions.map { around.prefix.utf8.count + $0.renderedPrompt.utf8.count + around.suffix.utf8.count }
        return max(1, bytes.reduce(0, +) / max(1, bytes.count) / 4)
    }

    /// The vote model's concentration for the variant: the profile's, or the bundled family median.
    func concentrationOf(_ variant: VariantID) throws -> Double {
        let set = try ProfileStore.load(profile)
        let voting = set.variants[variant]?.voting ?? set.variants.values.first?.voting
        return voting?.parameters(atTokens: 512).concentration ?? 2
    }

    static func show(_ collection: AccuracyCollection) {
        Swift.print(
            "mode             budget   k  accuracy  80 % interval    questions  mean tokens  no answer  vote model"
        )
        for cell in collection.cells {
            let budget =
                String(repeating: " ", count: max(0, 6 - (cell.budget.map(String.init) ?? "-").count))
                + (cell.budget.map(String.init) ?? "-")
            let predicted = cell.predicted.map { String(format: "%5.1f %%", $0 * 100) } ?? "     -"
            Swift.print(
                String(
                    format: "%@ %@ %3d  %6.1f %%  [%5.1f, %5.1f]  %9d  %11.1f  %7.1f %%  %@",
                    cell.mode.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0),
                    budget,
                    cell.samples,
                    cell.accuracy * 100,
                    cell.low * 100,
                    cell.high * 100,
                    cell.questions,
                    cell.meanOutputTokens,
                    cell.abstention * 100,
                    predicted
                )
            )
        }
        Swift.print(String(format: "widest 80 %% half-interval: %.1f points", collection.widestHalfWidthPoints))
    }

    private func write(
        _ collection: AccuracyCollection,
        questions: Int,
        options: Int,
        variant: VariantID,
        task: String,
        engine: String,
        typicalInput: Int,
        to directory: String
    ) throws {
        let set = try ProfileStore.load(directory)
        guard set.variants[variant] != nil else {
            throw EdgePlanError.invalidInput(
                "\(directory) has no model \(variant): calibrate it into the profile first",
                field: "--profile"
            )
        }
        let date = ISO8601DateFormatter().string(from: Date()).prefix(10)
        let source = "collected by edgeplan accuracy collect, \(questions) questions, \(engine), \(date)"
        let rows = collection.records(variant: variant, source: source)
        let path = "\(directory)/accuracy/\(task).yaml"
        var table: AccuracyTable
        if let existing = set.accuracy[task] {
            table = existing
            table.records.removeAll { $0.variant == variant }
            table.records += rows
            // One question count stands for every row: the smaller one, so no row claims more evidence than it has.
            table.questions = table.records.isEmpty ? questions : min(existing.questions, questions)
        } else {
            table = AccuracyTable(
                task: task,
                description: "\(task), collected",
                source: source,
                typicalInputTokens: typicalInput,
                answerOptions: options,
                questions: questions,
                records: rows
            )
        }
        try FileManager.default.createDirectory(atPath: "\(directory)/accuracy", withIntermediateDirectories: true)
        try AtomicFile.write(ProfileEncoder.accuracy(table), to: path)
        let problems = ProfileChecker.check(try ProfileStore.files(in: directory))
        for problem in problems { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
        if problems.contains(where: { $0.severity == .error }) {
            throw EdgePlanError.invalidFile("the written profile does not pass profile check", file: directory)
        }
        Swift.print("wrote \(path): \(rows.count) rows for \(variant)")
    }
}
