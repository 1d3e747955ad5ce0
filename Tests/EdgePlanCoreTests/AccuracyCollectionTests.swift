import Foundation
import Testing

@testable import EdgePlanCore

/// Task sets, graders and the tally of `accuracy collect`.
struct AccuracyCollectionTests {
    static let question = TaskQuestion(id: "q1", prompt: "Which?", answer: "C", options: ["a", "b", "c", "d"])

    @Test func choiceGraderReadsTheFinalLetterAfterTheThinking() {
        let grade = { (text: String) in AnswerGrader.choice.grade(text, question: Self.question)! }
        #expect(grade("<think>maybe the answer is B</think>\nAnswer: C") == GradedAnswer(answer: "C", correct: true))
        #expect(grade("So the answer is (B).") == GradedAnswer(answer: "B", correct: false))
        #expect(grade(" C. ") == GradedAnswer(answer: "C", correct: true))
        #expect(grade("\\boxed{C}") == GradedAnswer(answer: "C", correct: true))
        // A letter that is no option, or no letter at all, is no answer: the sample abstains from a vote.
        #expect(grade("Answer: E") == .unanswered)
        #expect(grade("I cannot tell") == .unanswered)
    }

    @Test func exactNumericAndRegexGraders() throws {
        let free = TaskQuestion(id: "n", prompt: "How many?", answer: "1,250")
        #expect(
            AnswerGrader.exact.grade("thinking\nAnswer: Paris.", question: .init(id: "c", prompt: "", answer: "paris"))
                == GradedAnswer(answer: "paris", correct: true)
        )
        #expect(
            try AnswerGrader.parse("numeric:0.5").grade("Answer: 1250.4 units", question: free)
                == GradedAnswer(answer: "1250.4", correct: true)
        )
        #expect(try AnswerGrader.parse("numeric:1%").grade("Answer: 1262", question: free)?.correct == true)
        #expect(try AnswerGrader.parse("numeric:1%").grade("Answer: 1263", question: free)?.correct == false)
        #expect(try AnswerGrader.parse("numeric").grade("no number", question: free) == .unanswered)
        let regex = try AnswerGrader.parse(#"regex:ROOM-(\d+)"#)
        #expect(
            regex.grade("go to ROOM-12 then ROOM-7", question: .init(id: "r", prompt: "", answer: "7"))
                == GradedAnswer(answer: "7", correct: true)
        )
        #expect(try AnswerGrader.parse("command:./grade.sh").grade("x", question: free) == nil)
    }

    @Test func badGradersAreNamed() {
        #expect(throws: EdgePlanError.self) { try AnswerGrader.parse("fuzzy") }
        #expect((try? AnswerGrader.parse("numeric:abc")) == nil)
        #expect((try? AnswerGrader.parse("regex:(")) == nil)
        #expect((try? AnswerGrader.parse("command:")) == nil)
    }

    @Test func taskSetErrorsNameTheFileAndLine() throws {
        let good =
            #"{"id": "a", "prompt": "P", "answer": "b", "options": ["x", "y"]}"# + "\n\n"
            + #"{"id": 2, "prompt": "Q", "answer": 7}"#
        let questions = try TaskSet.parse(good, file: "t.jsonl")
        #expect(questions.map(\.id) == ["a", "2"])
        #expect(questions[0].answer == "B" && questions[1].answer == "7")
        func failure(_ text: String) -> EdgePlanError? {
            do { _ = try TaskSet.parse(text, file: "t.jsonl") } catch let error as EdgePlanError { return error } catch
            { return nil }
            return nil
        }
        let missing = failure(#"{"id": "a", "prompt": "P", "answer": "A"}"# + "\n" + #"{"id": "b", "prompt": "P"}"#)
        #expect(missing?.line == 2 && missing?.field == "answer" && missing?.file == "t.jsonl")
        #expect(failure("{not json")?.line == 1)
        #expect(
            failure(#"{"id": "a", "prompt": "P", "answer": "Z", "options": ["x", "y"]}"#)?.message.contains(
                "neither an option's letter"
            ) == true
        )
        let repeated = failure(
            #"{"id": "a", "prompt": "P", "answer": "1"}"# + "\n" + #"{"id": "a", "prompt": "P", "answer": "1"}"#
        )
        #expect(repeated?.line == 2 && repeated?.message.contains("line 1") == true)
        #expect(failure("\n\n")?.message.contains("no questions") == true)
    }

    /// One run gives every budget's outcome: ended within B is its answer; else hard has none and thinking-budget
    /// has the forced one.
    @Test func oneRunGivesEveryBudgetsOutcome() {
        let right = GradedAnswer(answer: "C", correct: true)
        let wrong = GradedAnswer(answer: "A", correct: false)
        let sample = AccuracySample(
            question: "q",
            index: 0,
            outputTokens: 300,
            finished: true,
            graded: right,
            forced: [128: .init(graded: wrong, answerTokens: 2), 0: .init(graded: wrong, answerTokens: 1)],
            latencyS: 1
        )
        #expect(sample.outcome(mode: .hard, budget: 512)! == (right, 300))
        #expect(sample.outcome(mode: .hard, budget: 128)! == (.unanswered, 128))
        #expect(sample.outcome(mode: .thinkingBudget, budget: 128)! == (wrong, 130))
        #expect(sample.outcome(mode: .thinkingBudget, budget: 512)! == (right, 300))
        #expect(sample.outcome(mode: .noReasoning, budget: nil)! == (wrong, 1))
    }

    /// Resampled majority votes agree with the vote model on samples drawn from it: questions of equal difficulty
    /// (a large concentration), four options, no abstention.
    @Test func resampledVotesMatchTheVoteModelOnItsOwnWorld() {
        var random = SeededRandom(state: 5)
        var samples: [AccuracySample] = []
        let p = 0.55
        for question in 0..<600 {
            for index in 0..<8 {
                let correct = random.next() < p
                let answer = correct ? "A" : ["B", "C", "D"][Int(random.next() * 3) % 3]
                samples.append(
                    AccuracySample(
                        question: "q\(question)",
                        index: index,
                        outputTokens: 10,
                        finished: true,
                        graded: GradedAnswer(answer: answer, correct: correct),
                        latencyS: 0.1
                    )
                )
            }
        }
        let collection = AccuracyCollection(
            samples: samples,
            modes: [.base],
            budgets: [],
            votes: [1, 2, 4, 8],
            options: 4,
            concentration: 1e6,
            draws: 200
        )
        #expect(collection.cells.count == 4)
        for cell in collection.cells where cell.samples > 1 {
            #expect(
                abs(cell.accuracy - cell.predicted!) < 0.03,
                "k \(cell.samples): measured \(cell.accuracy), model \(cell.predicted!)"
            )
        }
        #expect(abs(collection.cells[0].accuracy - p) < 0.03)
        #expect(collection.cells[3].accuracy > collection.cells[0].accuracy + 0.15)
        #expect(collection.precise(within: 5) && !collection.precise(within: 0.5))
    }

    @Test func samplesFileRoundTripsAndRefusesAnotherDesign() throws {
        let header = AccuracySamplesFile.Header(
            model: "M/fp16",
            task: "t",
            grader: "choice",
            budgets: [64, 128],
            forcedBudgets: [0, 64, 128],
            samplesPerQuestion: 2,
            constrained: true,
            engine: "llama-server b1"
        )
        let sample = AccuracySample(
            question: "q",
            index: 1,
            outputTokens: 90,
            finished: true,
            graded: .init(answer: "B", correct: true),
            forced: [0: .init(graded: .init(answer: "A", correct: false), answerTokens: 1)],
            latencyS: 0.5
        )
        let bytes = AccuracySamplesFile.headerLine(header) + AccuracySamplesFile.lines([sample], time: 1)
        let read = try AccuracySamplesFile.read(bytes, file: "s.jsonl")
        #expect(read.header == header && read.samples == [sample])
        var other = header
        other.budgets = [64]
        #expect(header.difference(from: other) == "budgets: [64, 128] in the file, [64] asked")
        #expect(throws: EdgePlanError.self) {
            try AccuracySamplesFile.read(AccuracySamplesFile.lines([sample], time: 1), file: "s.jsonl")
        }
    }

    /// Collected rows load into a table the profile decoder accepts: hard rows capped, thinking-budget rows bounded
    /// by budget plus the answer allowance.
    @Test func collectedRowsMakeATableTheProfileReads() throws {
        let samples = (0..<10).map {
            AccuracySample(
                question: "q\($0)",
                index: 0,
                outputTokens: 200,
                finished: false,
                graded: .unanswered,
                forced: [64: .init(graded: .init(answer: "A", correct: $0 < 3), answerTokens: 1)],
                latencyS: 1
            )
        }
        let collection = AccuracyCollection(
            samples: samples,
            modes: [.hard, .thinkingBudget],
            budgets: [64],
            votes: [1],
            options: 4,
            concentration: 2
        )
        let variant = VariantID(model: "DSR1-Qwen-1.5B", quantization: .fp16)
        let table = AccuracyTable(
            task: "picked",
            description: "d",
            source: "s",
            typicalInputTokens: 50,
            answerOptions: 4,
            questions: 10,
            records: collection.records(variant: variant, source: "collected")
        )
        let decoded = try ProfileDecoder.decodeAccuracy(
            .init(path: "accuracy/picked.yaml", text: ProfileEncoder.accuracy(table))
        )
        #expect(decoded.records.count == 2)
        let hard = decoded.records.first { $0.mode == .hard }!
        let thinking = decoded.records.first { $0.mode == .thinkingBudget }!
        #expect(hard.capped && hard.accuracy == 0 && hard.meanOutputTokens == 64)
        #expect(!thinking.capped && abs(thinking.accuracy - 0.3) < 1e-9 && thinking.meanOutputTokens == 65)
    }
}
