import EdgePlanCore
import Testing

@testable import EdgePlanEngine

struct ServerSentEventsTests {
    @Test func payloadsSurviveAnyChunking() {
        let stream = Array("data: {\"a\":1}\n\n: comment\ndata:{\"b\":2}\r\n\nevent: x\ndata: [DONE]\n\n".utf8)
        for size in 1...stream.count {
            var parser = ServerSentEvents()
            var payloads: [String] = []
            var index = 0
            while index < stream.count {
                let end = min(stream.count, index + size)
                payloads += parser.feed(stream[index..<end]).map { String(decoding: $0, as: UTF8.self) }
                index = end
            }
            payloads += parser.finish().map { String(decoding: $0, as: UTF8.self) }
            #expect(payloads == ["{\"a\":1}", "{\"b\":2}", "[DONE]"], "chunks of \(size) bytes")
        }
    }

    @Test func aLastLineWithoutNewlineIsKept() {
        var parser = ServerSentEvents()
        #expect(parser.feed(Array("data: 1\ndata: 2".utf8)).count == 1)
        #expect(parser.buffered == 7)
        #expect(parser.finish().map { String(decoding: $0, as: UTF8.self) } == ["2"])
    }
}

struct EngineEndpointTests {
    @Test func httpAndUnixEndpoints() throws {
        #expect(
            try EngineEndpoint("http://127.0.0.1:8080/v1/").url(path: "/v1/completions")
                == "http://127.0.0.1:8080/v1/completions"
        )
        #expect(
            try EngineEndpoint("unix:/run/llama/engine.sock").url(path: "/props")
                == "http+unix://%2Frun%2Fllama%2Fengine.sock/props"
        )
        #expect(throws: EdgePlanError.self) { try EngineEndpoint("localhost:8080") }
        #expect(throws: EdgePlanError.self) { try EngineEndpoint("unix:relative.sock") }
    }

    @Test func unknownEngineKindsNameTheKnownOnes() {
        #expect(throws: EdgePlanError.self) { try EngineKind.named("vllm2") }
        do {
            _ = try EngineKind.named("tgi")
        } catch {
            #expect("\(error)".contains("llama-server") && "\(error)".contains("tgi"))
        }
        #expect((try? EngineKind.named("LLAMA-SERVER")) == .llamaServer)
    }
}

struct EngineRequestBodyTests {
    func body(_ capabilities: EngineCapabilities, _ request: EngineClient.Request, n: Int = 1) throws -> JSONValue {
        let client = EngineClient(
            endpoint: try EngineEndpoint("http://127.0.0.1:1"),
            capabilities: capabilities,
            model: "m"
        )
        return try JSONValue.parse(try client.body(request, n: n))
    }

    @Test func theRecordDecidesEveryField() throws {
        let sweep = EngineClient.Request(
            prompt: .tokens([5, 6, 7]),
            maxTokens: 64,
            samples: 4,
            fixedLength: true,
            freshPrompt: true
        )
        let llama = try body(.llamaServer, sweep, n: 4)
        #expect(llama["ignore_eos"] == .bool(true) && llama["cache_prompt"] == .bool(false) && llama["n"] == .int(4))
        #expect(llama["max_tokens"] == .int(64) && llama["stream"] == .bool(true))
        let vllm = try body(.vllm, sweep, n: 4)
        #expect(vllm["ignore_eos"] == .bool(true) && vllm["cache_prompt"] == nil)
        // An engine that cannot run to a fixed length says so instead of measuring the wrong thing.
        #expect(throws: EngineError.self) { try body(.ollama, sweep) }
        #expect(throws: EngineError.self) {
            try body(.ollama, EngineClient.Request(prompt: .tokens([1]), maxTokens: 4))
        }
        let text = try body(.ollama, EngineClient.Request(prompt: .text("hi"), maxTokens: 4))
        #expect(text["prompt"] == .string("hi") && text["n"] == nil)
    }

    @Test func everyKindHasARecordAndOnlyTheTestedOnesClaimVerification() {
        for kind in EngineKind.allCases {
            let record = EngineCapabilities.of(kind)
            #expect(record.kind == kind)
            #expect(!record.documentation.isEmpty)
            #expect(kind == .llamaServer || record.verified.isEmpty)
        }
        #expect(!EngineCapabilities.transformersServe.fitForPlanning)
    }
}

struct SweepDesignTests {
    @Test func keysAreUniqueAndResumeSkipsWhatIsDone() throws {
        let design = try SweepDesign.standard(
            contextTokens: 1024,
            decodeInputs: [128, 512],
            decodeTokens: 256,
            parallelFactors: [1, 2, 4],
            repeats: 2
        )
        let keys = design.points.map(\.key)
        #expect(Set(keys).count == keys.count)
        let done = Set(keys.prefix(5))
        #expect(design.remaining(after: done).map(\.key) == Array(keys.dropFirst(5)))
        #expect(design.points.contains { $0.phase == .prefill && $0.inputTokens == 1023 })
        #expect(design.decodeCheckpoints.first == 16 && design.decodeCheckpoints.last == 256)
        #expect(throws: EdgePlanError.self) {
            try SweepDesign.standard(contextTokens: 512, decodeInputs: [512], decodeTokens: 256)
        }
    }

    @Test func aTraceCutShortLosesOnlyItsLastLine() throws {
        let context = CollectedTrace.Context(engine: .llamaServer, engineVersion: "b1", model: "M")
        let point = SweepDesign.Point(phase: .prefill, inputTokens: 16, outputTokens: 1)
        let line = CollectedTrace.lines(
            point: point,
            measurements: [
                .init(
                    phase: .prefill,
                    inputTokens: 16,
                    outputTokens: 0,
                    batch: 1,
                    latencyS: 0.01,
                    energyJ: nil,
                    timing: "engine"
                )
            ],
            context: context,
            time: 1
        )
        var bytes = line + Array(line.dropLast(9))
        let progress = try CollectedTrace.progress(bytes, file: "t.jsonl")
        #expect(progress.done == [point.key] && progress.wholeBytes == line.count && progress.model == "M")
        bytes =
            line
            + Array(
                CollectedTrace.lines(
                    point: point,
                    measurements: [],
                    context: .init(engine: .llamaServer, engineVersion: "b1", model: "N"),
                    time: 2
                )
            )
        #expect(throws: EdgePlanError.self) { try CollectedTrace.progress(bytes, file: "t.jsonl") }
    }
}

struct DesignReplayTests {
    /// A sweep made by a known decode law and ramp power: the design's two runs recover the law, the whole grid is
    /// scored, and the design stays within its budget.
    @Test func twoStreamedRunsRecoverTheLawOfTheWholeGrid() throws {
        let truth = DecodeLatencyModel(mSPerToken2: 2e-7, nSPerToken: 0.025, source: "truth")
        let power = PowerCurve.ramp(steadyW: 20, initialDeficitW: 6, timeConstantS: 4)
        var runs: [Observation] = []
        for input in stride(from: 128, through: 1024, by: 128) {
            for output in [16, 32, 64, 96, 128] + Array(stride(from: 256, through: 2048, by: 128)) {
                let seconds = truth.seconds(input: Double(input), output: Double(output))
                runs.append(
                    Observation(
                        model: "M",
                        phase: .decode,
                        inputTokens: input,
                        outputTokens: output,
                        latencyS: seconds,
                        energyJ: power.averagePowerW(tokens: Double(output), seconds: seconds) * seconds
                    )
                )
            }
        }
        let result = try DesignReplay.replay(runs, budgetShare: 0.03)
        #expect(result.inputs.first == 128 && result.inputs.count == 2 && result.capTokens == 2048)
        #expect(result.share <= 0.03 && result.scoredRuns == runs.count)
        #expect(result.decodeMAPE < 0.01 && abs(result.decode.nSPerToken - 0.025) < 1e-6)
        #expect((result.energyMAPE ?? 100) < 0.5)
        #expect(throws: EdgePlanError.self) { try DesignReplay.replay(Array(runs.prefix(5))) }
    }
}

struct EngineShapedPlanTests {
    func plan(engine: EngineKind) throws -> JSONValue {
        var policy = try PolicyDecoder.decode(
            "kind: policy\nglobal:\n  engine: \(engine.rawValue)\n",
            file: "policy.yaml"
        )
        policy.parallelFactors = [1, 4]
        let profile = try ProfileDecoder.decode(BundledResources.profileFiles)
        let planner = try Planner(profile: profile, policy: policy)
        guard case let .plan(plan) = try planner.plan(PlanRequest(task: "mmlu-redux", deadlineS: 120, inputTokens: 256))
        else {
            Issue.record("no plan")
            return .null
        }
        return plan.json
    }

    @Test func thePolicysEngineShapesTheRequestBody() throws {
        let vllm = try plan(engine: .vllm)["request"]
        #expect(vllm?["engine"] == nil && vllm?["body"]?["n"] != nil, "plans for vLLM keep their shape")
        let llama = try plan(engine: .llamaServer)["request"]
        #expect(
            llama?["engine"] == .string("llama-server") && llama?["requests"] == .int(1) && llama?["body"]?["n"] != nil
        )
        #expect(
            llama?["body"]?["continue_final_message"] == nil,
            "llama-server prefills a final assistant message itself"
        )
        let ollama = try plan(engine: .ollama)["request"]
        let samples = try plan(engine: .ollama)["parallel"]?.intValue ?? 1
        #expect(ollama?["body"]?["n"] == nil && ollama?["requests"] == .int(samples))
        #expect(throws: EdgePlanError.self) {
            try PolicyDecoder.decode("kind: policy\nglobal:\n  engine: tgi\n", file: "policy.yaml")
        }
    }
}
