import EdgePlanCore
@testable import EdgePlanDaemon
import Foundation
import Logging
import Testing

struct DispatcherTests {
    static let service: PlannerService = try! PlannerService(logger: Logger(label: "test")) {
        try ProfileStore.loadPlanner(policyPath: nil, profileDirectory: nil)
    }
    var dispatcher: VarlinkDispatcher { VarlinkDispatcher(service: Self.service) }

    func call(_ text: String) -> JSONValue? { dispatcher.handle(Array(text.utf8)) }

    @Test func planReturnsThePlan() {
        let reply = call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":5000,"inputTokens":256,"requestId":"r1"}}"#)
        #expect(reply?["parameters"]?["plan"]?["requestId"]?.stringValue == "r1")
        #expect(reply?["parameters"]?["plan"]?["predicted"]?["latencyPercentileMs"]?.doubleValue ?? .infinity <= 5000)
    }

    @Test func errorsAreVarlinkErrorNames() {
        #expect(call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":"soon","inputTokens":256}}"#)?["error"]?.stringValue == "org.varlink.service.InvalidParameter")
        #expect(call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":1,"inputTokens":256}}"#)?["error"]?.stringValue == "io.edgeplan.Planner.Infeasible")
        #expect(call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"juggling","deadlineMs":1000,"inputTokens":256}}"#)?["error"]?.stringValue == "io.edgeplan.Planner.UnknownTask")
        #expect(call(#"{"method":"io.edgeplan.Planner.Nope","parameters":{}}"#)?["error"]?.stringValue == "org.varlink.service.MethodNotFound")
        #expect(call(#"{"method":"com.example.Other.Call"}"#)?["error"]?.stringValue == "org.varlink.service.InterfaceNotFound")
        #expect(call("garbage")?["error"]?.stringValue == "org.varlink.service.InvalidParameter")
        #expect(call(#"{"method":"io.edgeplan.Planner.Status","oneway":true}"#) == nil)
    }

    @Test func errorsNameWhatTheCallerSent() {
        let model = call(#"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"x","model":"GPT-9","quantization":"fp16","mode":"base","parallel":1,"inputTokens":256,"outputTokens":100,"latencyMs":1000}}"#)
        #expect(model?["error"]?.stringValue == "io.edgeplan.Planner.UnknownModel")
        #expect(model?["parameters"]?["model"]?.stringValue == "GPT-9")
        let task = call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"juggling","deadlineMs":1000}}"#)
        #expect(task?["parameters"]?["task"]?.stringValue == "juggling")
        guard case let .array(known)? = task?["parameters"]?["known"] else { Issue.record("UnknownTask lists the known classes"); return }
        #expect(known.contains(.string("mmlu-redux")))
        // Strict JSON: a duplicated key or a leading plus is a malformed message, not a guess.
        #expect(call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":5000,"deadlineMs":1}}"#)?["error"]?.stringValue == "org.varlink.service.InvalidParameter")
        #expect(call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":+5000}}"#)?["error"]?.stringValue == "org.varlink.service.InvalidParameter")
    }

    @Test func reportIsValidated() {
        let good = call(#"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"r","model":"DSR1-Llama-8B","quantization":"fp16","mode":"hard","tokenBudget":128,"parallel":1,"inputTokens":256,"outputTokens":100,"latencyMs":10300}}"#)
        #expect(good?["parameters"]?["accepted"]?.boolValue == true)
        let bad = call(#"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"r","model":"DSR1-Llama-8B","quantization":"fp16","mode":"hard","parallel":1,"inputTokens":256,"outputTokens":100,"latencyMs":-4}}"#)
        #expect(bad?["parameters"]?["parameter"]?.stringValue == "latencyMs")
    }

    @Test func journalFieldNamesAreUpperCasedWithPrefix() {
        #expect(JournalLogHandler.fieldName("model") == "EDGEPLAN_MODEL")
        #expect(JournalLogHandler.fieldName("pred_latency_ms") == "EDGEPLAN_PRED_LATENCY_MS")
        #expect(JournalLogHandler.fieldName("MESSAGE_ID") == "MESSAGE_ID")
    }

    @Test func atomicWriteReplacesWholeFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edgeplan-atomic-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/profile.yaml"
        try AtomicFile.write("old", to: path)
        try AtomicFile.write("new", to: path)
        let content = try String(contentsOfFile: path, encoding: .utf8)
        #expect(content == "new")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(names == ["profile.yaml"])
        #expect(throws: EdgePlanError.self) { try AtomicFile.write("x", to: "\(directory)/missing/dir/file") }
    }
}
