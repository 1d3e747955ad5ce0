import AsyncHTTPClient
import EdgePlanCore
import Foundation
import NIOCore
import NIOHTTP1

/// Evaluates a task set on a running engine and appends every sample's outcome to a samples file.
///
/// Each question's K samples are drawn as one streamed request (through `n` or concurrent requests, as the
/// engine's record says), unconstrained, up to the largest budget: the stream gives the hard-cap outcome at every
/// smaller budget (did the answer come before B tokens?). For the thinking-budget and no-reasoning modes, the
/// answer is forced after the first B tokens of the same run: the thinking so far, the end tag, an answer cue, and
/// a few tokens of answer (restricted to the options where asked). The engine's prompt cache serves the shared
/// prefix, so a forced answer costs a short prefill and a token or two.
public struct AccuracyCollector: Sendable {
    public var client: EngineClient
    public var header: AccuracySamplesFile.Header
    public var questions: [TaskQuestion]
    public var grader: AnswerGrader
    /// The prompt around a question: `prefix + question + suffix` (the model's chat template up to its thinking).
    public var promptPrefix: String
    public var promptSuffix: String
    /// What closes the thinking and asks for the answer when it is forced.
    public var thinkEnd: String = "</think>"
    public var answerCue: String = "\n\nAnswer: "
    public var temperature: Double
    public var samplesPath: String
    public var timeBudgetS: Double?
    /// Stop once every cell's 80 % interval is within this many points; checked every ten questions.
    public var precisionPoints: Double?
    /// The cells the precision stop looks at (the tally of the samples so far).
    public var tally: @Sendable ([AccuracySample]) -> AccuracyCollection
    public var now: @Sendable () -> Double

    public init(
        client: EngineClient,
        header: AccuracySamplesFile.Header,
        questions: [TaskQuestion],
        grader: AnswerGrader,
        promptPrefix: String,
        promptSuffix: String,
        temperature: Double,
        samplesPath: String,
        tally: @escaping @Sendable ([AccuracySample]) -> AccuracyCollection,
        now: @escaping @Sendable () -> Double
    ) {
        self.client = client
        self.header = header
        self.questions = questions
        self.grader = grader
        self.promptPrefix = promptPrefix
        self.promptSuffix = promptSuffix
        self.temperature = temperature
        self.samplesPath = samplesPath
        self.tally = tally
        self.now = now
    }

    public struct Summary: Sendable {
        public var samples: [AccuracySample]
        public var measuredQuestions: Int
        public var skippedQuestions: Int
        public var engineTimeS: Double
        public var stop: Stop
        public var forcedRequests: Int
    }

    public enum Stop: String, Sendable {
        case allQuestions = "every question was asked"
        case precision = "every cell is within the precision asked"
        case timeBudget = "the time budget is spent"
    }

    /// Asks the questions the samples file lacks, in task-set order. `progress(done, total, id)` follows each.
    public func run(progress: @Sendable (Int, Int, String) -> Void = { _, _, _ in }) async throws -> Summary {
        let file = try TraceFile(path: samplesPath)
        let existing = try AccuracySamplesFile.read(file.wholeLines, file: samplesPath)
        if let found = existing.header {
            if let difference = found.difference(from: header) {
                throw EdgePlanError.invalidFile(
                    "this samples file was collected with another design (\(difference)): give another -o",
                    file: samplesPath
                )
            }
        } else {
            try file.append(AccuracySamplesFile.headerLine(header))
        }
        let known = Set(questions.map(\.id))
        var samples = existing.samples.filter { known.contains($0.question) }
        let done = Set(samples.map(\.question))
        let started = now()
        var engineTime = 0.0
        var measured = 0
        var forcedRequests = 0
        var stop = Stop.allQuestions
        for (index, question) in questions.enumerated() where !done.contains(question.id) {
            try Task.checkCancellation()
            if let budget = timeBudgetS, now() - started >= budget {
                stop = .timeBudget
                break
            }
            // The tally resamples every vote cell: checked every tenth question, not after each (quadratic in a long run).
            if let precision = precisionPoints, !samples.isEmpty, measured % 10 == 0,
                tally(samples).precise(within: precision)
            {
                stop = .precision
                break
            }
            let askStart = now()
            let (drawn, forced) = try await ask(question)
            engineTime += now() - askStart
            forcedRequests += forced
            try file.append(AccuracySamplesFile.lines(drawn, time: Date().timeIntervalSince1970))
            samples += drawn
            measured += 1
            progress(index + 1, questions.count, question.id)
        }
        if stop == .allQuestions, let precision = precisionPoints, tally(samples).precise(within: precision) {
            stop = .precision
        }
        return Summary(
            samples: samples,
            measuredQuestions: measured,
            skippedQuestions: done.intersection(known).count,
            engineTimeS: engineTime,
            stop: stop,
            forcedRequests: forcedRequests
        )
    }

    /// One question's K samples, each with its forced answers.
    func ask(_ question: TaskQuestion) async throws -> ([AccuracySample], Int) {
        let prompt = promptPrefix + question.renderedPrompt + promptSuffix
        let maxBudget = header.budgets.max() ?? 1
        let completion = try await client.complete(
            .init(
                prompt: .text(prompt),
                maxTokens: maxBudget,
                samples: header.samplesPerQuestion,
                temperature: temperature,
                seed: abs(question.id.hashValue % 1_000_000)
            )
        )
        guard completion.samples.count == header.samplesPerQuestion else {
            throw EngineError(
                .malformedStream,
                "\(client.endpoint) returned \(completion.samples.count) of \(header.samplesPerQuestion) samples",
                request: "question \(question.id)"
            )
        }
        var result: [AccuracySample] = []
        var forcedRequests = 0
        for (index, sample) in completion.samples.enumerated() {
            let tokens = sample.outputTokens
            let finished = sample.finishReason == "stop" && tokens < maxBudget
            let graded = try await grade(sample.text, question: question)
            var forced: [Int: AccuracySample.Forced] = [:]
            for budget in header.forcedBudgets where !(finished && tokens <= budget) {
                let thinking = sample.pieces.prefix(budget).joined()
                forced[budget] = try await force(question, prompt: prompt, thinking: thinking, seed: index)
                forcedRequests += 1
            }
            let latency = sample.chunkTimesS.last ?? completion.totalS
            result.append(
                AccuracySample(
                    question: question.id,
                    index: index,
                    outputTokens: tokens,
                    finished: finished,
                    graded: graded,
                    forced: forced,
                    latencyS: latency
                )
            )
        }
        return (result, forcedRequests)
    }

    /// The answer after `thinking`, forced: the end tag and the cue, then a few tokens, restricted to the options when
    /// the collection is constrained.
    func force(
        _ question: TaskQuestion,
        prompt: String,
        thinking: String,
        seed: Int
    ) async throws -> AccuracySample.Forced {
        var extra: [(String, JSONValue)] = []
        if header.constrained {
            guard
                let fields = client.capabilities.choiceFields(
                    question.letters.isEmpty ? ["A", "B", "C", "D"] : question.letters
                )
            else {
                throw EngineError(
                    .unsupported,
                    "\(client.capabilities.kind.rawValue) cannot restrict an answer to given choices",
                    request: "question \(question.id)"
                )
            }
            extra = fields
        }
        let cap = header.constrained ? 1 : 32
        let completion = try await client.complete(
            .init(
                prompt: .text(prompt + thinking + thinkEnd + answerCue),
                maxTokens: cap,
                samples: 1,
                temperature: temperature,
                seed: seed,
                extra: extra
            )
        )
        let sample = completion.samples.first ?? EngineClient.Sample()
        return AccuracySample.Forced(
            graded: try await grade(sample.text, question: question),
            answerTokens: max(sample.outputTokens, 1)
        )
    }

    func grade(_ output: String, question: TaskQuestion) async throws -> GradedAnswer {
        if let graded = grader.grade(output, question: question) { return graded }
        guard case let .command(command) = grader else { return .unanswered }
        return try await Self.runGrader(command, output: output, question: question)
    }

    /// Runs an external grader: JSON on its standard input, the answer on its first output line, 0 right, 1 wrong.
    public static func runGrader(_ command: String, output: String, question: TaskQuestion) async throws -> GradedAnswer
    {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", command]
                let input = Pipe()
                let stdout = Pipe()
                process.standardInput = input
                process.standardOutput = stdout
                process.standardError = FileHandle.standardError
                do {
                    try process.run()
                    let request = JSONValue.fields([
                        "id": .string(question.id), "output": .string(output), "answer": .string(question.answer),
                    ])
                    input.fileHandleForWriting.write(Data(request.utf8() + [0x0A]))
                    try input.fileHandleForWriting.close()
                    let printed = stdout.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    let answer = String(decoding: printed, as: UTF8.self).split(separator: "\n").first.map {
                        String($0).trimmed
                    }
                    switch process.terminationStatus {
                    case 0, 1:
                        continuation.resume(
                            returning: GradedAnswer(
                                answer: answer.flatMap { $0.isEmpty ? nil : $0 },
                                correct: process.terminationStatus == 0
                            )
                        )
                    default:
                        continuation.resume(
                            throwing: EdgePlanError.invalidInput(
                                "the grader command exited \(process.terminationStatus) on question \(question.id): it must exit 0 (right) or 1 (wrong)",
                                field: "--grader"
                            )
                        )
                    }
                } catch {
                    continuation.resume(
                        throwing: EdgePlanError.invalidInput(
                            "the grader command does not run: \(error)",
                            field: "--grader"
                        )
                    )
                }
            }
        }
    }
}

extension EngineClient {
    /// The model's chat template around one user message, split at the message: what goes before a question and
    /// after it (the assistant's turn, opening its thinking). Nil when the engine cannot render templates.
    public func promptTemplate() async throws -> (prefix: String, suffix: String)? {
        guard let path = capabilities.templatePath else { return nil }
        let sentinel = "EDGEPLAN-QUESTION-7f3a"
        var request = HTTPClientRequest(url: endpoint.url(path: path))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let body = JSONValue.fields([
            "messages": .array([.fields(["role": .string("user"), "content": .string(sentinel)])])
        ])
        request.body = .bytes(ByteBuffer(bytes: body.utf8()))
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(30))
            bytes = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw EngineError(.unreachable, "\(endpoint) does not answer: \(error)", request: "POST \(path)")
        }
        guard response.status == .ok, let value = try? JSONValue.parse(Array(buffer: bytes)),
            let prompt = value["prompt"]?.stringValue,
            let range = prompt.range(of: sentinel)
        else {
            throw EngineError(
                .malformedStream,
                "\(endpoint) rendered no template: \(String(buffer: bytes).prefix(200))",
                request: "POST \(path)"
            )
        }
        return (String(prompt[..<range.lowerBound]), String(prompt[range.upperBound...]))
    }
}
