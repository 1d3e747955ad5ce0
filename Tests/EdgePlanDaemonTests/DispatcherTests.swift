import EdgePlanCore
import Foundation
import Logging
import Testing

@testable import EdgePlanDaemon

struct DispatcherTests {
    static let service: PlannerService = try! PlannerService(logger: Logger(label: "test")) {
        try ProfileStore.loadPlanner(policyPath: nil, profileDirectory: nil)
    }
    var dispatcher: VarlinkDispatcher { VarlinkDispatcher(service: Self.service) }

    func call(_ text: String) -> JSONValue? { dispatcher.handle(Array(text.utf8)) }

    @Test func planReturnsThePlan() {
        let reply = call(
            #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":8000,"inputTokens":256,"requestId":"r1"}}"#
        )
        #expect(reply?["parameters"]?["plan"]?["requestId"]?.stringValue == "r1")
        #expect(reply?["parameters"]?["plan"]?["predicted"]?["latencyPercentileMs"]?.doubleValue ?? .infinity <= 8000)
    }

    @Test func errorsAreVarlinkErrorNames() {
        #expect(
            call(
                #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":"soon","inputTokens":256}}"#
            )?["error"]?.stringValue == "org.varlink.service.InvalidParameter"
        )
        #expect(
            call(
                #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":1,"inputTokens":256}}"#
            )?["error"]?.stringValue == "io.edgeplan.Planner.Infeasible"
        )
        #expect(
            call(
                #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"juggling","deadlineMs":1000,"inputTokens":256}}"#
            )?["error"]?.stringValue == "io.edgeplan.Planner.UnknownTask"
        )
        #expect(
            call(#"{"method":"io.edgeplan.Planner.Nope","parameters":{}}"#)?["error"]?.stringValue
                == "org.varlink.service.MethodNotFound"
        )
        #expect(
            call(#"{"method":"com.example.Other.Call"}"#)?["error"]?.stringValue
                == "org.varlink.service.InterfaceNotFound"
        )
        #expect(call("garbage")?["error"]?.stringValue == "io.edgeplan.Planner.InvalidInput")
        #expect(call(#"{"method":"io.edgeplan.Planner.Status","oneway":true}"#) == nil)
    }

    @Test func errorsNameWhatTheCallerSent() {
        let model = call(
            #"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"x","model":"GPT-9","quantization":"fp16","mode":"base","parallel":1,"inputTokens":256,"outputTokens":100,"latencyMs":1000}}"#
        )
        #expect(model?["error"]?.stringValue == "io.edgeplan.Planner.UnknownModel")
        #expect(model?["parameters"]?["model"]?.stringValue == "GPT-9")
        let task = call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"juggling","deadlineMs":1000}}"#)
        #expect(task?["parameters"]?["task"]?.stringValue == "juggling")
        guard case let .array(known)? = task?["parameters"]?["known"] else {
            Issue.record("UnknownTask lists the known classes")
            return
        }
        #expect(known.contains(.string("mmlu-redux")))
        // Strict JSON: a duplicated key or a leading plus is a malformed message, not a guess.
        #expect(
            call(
                #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":5000,"deadlineMs":1}}"#
            )?["error"]?.stringValue == "io.edgeplan.Planner.InvalidInput"
        )
        #expect(
            call(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":+5000}}"#)?[
                "error"
            ]?.stringValue == "io.edgeplan.Planner.InvalidInput"
        )
    }

    @Test func reportIsValidated() {
        let good = call(
            #"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"r","model":"DSR1-Llama-8B","quantization":"fp16","mode":"hard","tokenBudget":128,"parallel":1,"inputTokens":256,"outputTokens":100,"latencyMs":10300}}"#
        )
        #expect(good?["parameters"]?["accepted"]?.boolValue == true)
        let bad = call(
            #"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"r","model":"DSR1-Llama-8B","quantization":"fp16","mode":"hard","parallel":1,"inputTokens":256,"outputTokens":100,"latencyMs":-4}}"#
        )
        #expect(bad?["parameters"]?["parameter"]?.stringValue == "latencyMs")
    }

    @Test func journalFieldNamesAreUpperCasedWithPrefix() {
        #expect(JournalLogHandler.fieldName("model") == "EDGEPLAN_MODEL")
        #expect(JournalLogHandler.fieldName("pred_latency_ms") == "EDGEPLAN_PRED_LATENCY_MS")
        #expect(JournalLogHandler.fieldName("MESSAGE_ID") == "MESSAGE_ID")
    }

    /// A decision's entry is written from its record on the writer thread: every field, in name order, with the
    /// plan's values; its stderr line carries the same `EDGEPLAN_` fields but the logger's.
    @Test func decisionEntryCarriesThePlan() throws {
        let planner = try ProfileStore.loadPlanner(policyPath: nil, profileDirectory: nil)
        guard
            case let .plan(plan) = try planner.plan(
                PlanRequest(task: "mmlu-redux", deadlineS: 8, energyBudgetJ: 200, inputTokens: 256, requestID: "j1")
            )
        else {
            Issue.record("no plan")
            return
        }
        let entry = JournalSink.Entry(
            message: "plan decided",
            priority: 6,
            logger: "edgeplan",
            metadata: [:],
            decision: DecisionRecord(plan)
        )
        let fields = JournalLogHandler.fields(of: entry)
        let values = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        #expect(fields.count == values.count, "no field twice")
        #expect(values["MESSAGE_ID"] == PlannerService.planDecidedMessageID)
        #expect(values["EDGEPLAN_MODEL"] == plan.configuration.variant.model)
        #expect(values["EDGEPLAN_REQUEST_ID"] == "j1")
        #expect(values["EDGEPLAN_ENERGY_BUDGET_J"] == "200" && values["EDGEPLAN_DEADLINE_MS"] == "8000")
        #expect(values["EDGEPLAN_PRED_LATENCY_MS"] == (plan.latencyS * 1000).significantDigits(4))
        #expect(values["EDGEPLAN_PARALLEL"] == String(plan.configuration.parallel))
        let own = fields.map(\.0).drop { !$0.hasPrefix("MESSAGE_ID") }
        #expect(own.count == 25 && own.dropFirst().sorted() == Array(own.dropFirst()))
        let line = JournalSink.line(entry)
        #expect(
            line.hasPrefix("edgeplan: plan decided EDGEPLAN_ACCURACY_HIGH=")
                && line.hasSuffix(" EDGEPLAN_TOKEN_BUDGET=\(values["EDGEPLAN_TOKEN_BUDGET"]!)\n")
        )
        #expect(
            !line.contains("EDGEPLAN_LOGGER") && line.contains(" EDGEPLAN_MODEL=\(plan.configuration.variant.model) ")
        )
    }

    @Test func atomicWriteReplacesWholeFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edgeplan-atomic-\(getpid())")
            .path
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

/// The interface description is the one schema: calls are checked against it, and every reply and error the
/// dispatcher sends matches what it declares.
struct SchemaTests {
    let dispatcher = VarlinkDispatcher(service: DispatcherTests.service)
    let planner = try! VarlinkSchema(parsing: PlannerInterface.description)
    let service = try! VarlinkSchema(parsing: VarlinkDispatcher.serviceDescription)

    @Test func bothDescriptionsParse() {
        #expect(planner.name == "io.edgeplan.Planner")
        #expect(Set(planner.methods.keys) == ["Plan", "Frontier", "Report", "Status", "GetPolicy", "Reload", "Watch"])
        #expect(
            planner.errors["Infeasible"]?.map(\.name) == [
                "task", "limit", "message", "missByMs", "requestedMs", "missByJ", "requestedJ", "missByAccuracy",
                "requestedAccuracy", "missByTokens", "requestedTokens", "fitsAfterRequestId", "fitsAfterMs", "closest",
            ]
        )
        #expect(
            service.methods["GetInfo"]?.output.map(\.name) == ["vendor", "product", "version", "url", "interfaces"]
        )
        #expect(throws: EdgePlanError.self) { try VarlinkSchema(parsing: "interface a.b\nmethod M(x: int) (y: int)") }
    }

    @Test func callsAreCheckedAgainstTheSchema() {
        func parameter(_ text: String) -> String? {
            let reply = dispatcher.handle(Array(text.utf8))
            #expect(reply?["error"]?.stringValue == "org.varlink.service.InvalidParameter", "\(text)")
            return reply?["parameters"]?["parameter"]?.stringValue
        }
        // A misspelt field is an error, not a default silently used.
        #expect(
            parameter(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadline_ms":5000}}"#)
                == "deadline_ms"
        )
        #expect(parameter(#"{"method":"io.edgeplan.Planner.Plan","parameters":{"deadlineMs":5000}}"#) == "task")
        #expect(
            parameter(
                #"{"method":"io.edgeplan.Planner.Frontier","parameters":{"task":"mmlu-redux","inputTokens":"many"}}"#
            ) == "inputTokens"
        )
        #expect(
            parameter(
                #"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"r","latencyMs":1,"sampleOutputTokens":[1,"x"]}}"#
            ) == "sampleOutputTokens"
        )
        #expect(parameter(#"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{}}"#) == "interface")
    }

    /// Every reply (its method's output) and every error (a declared error's fields) over a battery of calls.
    @Test func everyReplyAndErrorMatchesTheSchema() throws {
        let calls = [
            #"{"method":"org.varlink.service.GetInfo"}"#,
            #"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"io.edgeplan.Planner"}}"#,
            #"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"com.example.None"}}"#,
            #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":5000,"requestId":"schema-1"}}"#,
            #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"natural-plan-trip","objective":"min-energy","minAccuracy":0.1}}"#,
            #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":1}}"#,
            #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"juggling"}}"#,
            #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","objective":"fastest"}}"#,
            #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","minAccuracy":7}}"#,
            #"{"method":"io.edgeplan.Planner.Frontier","parameters":{"task":"mmlu-redux","inputTokens":256}}"#,
            #"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"schema-1","latencyMs":900,"outputTokens":100,"correct":true}}"#,
            #"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"schema-1","latencyMs":900,"outputTokens":100}}"#,
            #"{"method":"io.edgeplan.Planner.Report","parameters":{"requestId":"x","model":"GPT-9","quantization":"fp16","mode":"base","parallel":1,"inputTokens":256,"outputTokens":100,"latencyMs":1000}}"#,
            #"{"method":"io.edgeplan.Planner.Status"}"#,
            #"{"method":"io.edgeplan.Planner.GetPolicy"}"#,
            #"{"method":"io.edgeplan.Planner.Nope"}"#,
            "garbage",
        ]
        var errors: Set<String> = []
        for text in calls {
            let reply = try #require(dispatcher.handle(Array(text.utf8)))
            let parameters = reply["parameters"] ?? .object([])
            if let error = reply["error"]?.stringValue {
                errors.insert(error)
                let dot = try #require(error.lastIndex(of: "."))
                let schema = try #require(
                    [planner, service].first { $0.name == error[..<dot] },
                    "\(error) is in no interface"
                )
                let fields = try #require(
                    schema.errors[String(error[error.index(after: dot)...])],
                    "\(error) is not declared"
                )
                #expect(schema.mismatch(parameters, fields) == nil, "\(error): \(parameters.serialized())")
            } else {
                let method = try #require(text.split(separator: "\"")[3].split(separator: ".").last.map(String.init))
                let schema = text.contains("org.varlink.service") ? service : planner
                let output = try #require(schema.methods[method]?.output)
                #expect(
                    schema.mismatch(parameters, output) == nil,
                    "\(method): \(schema.mismatch(parameters, output) ?? "")"
                )
            }
        }
        #expect(
            errors == [
                "org.varlink.service.InterfaceNotFound", "io.edgeplan.Planner.Infeasible",
                "io.edgeplan.Planner.UnknownTask",
                "org.varlink.service.InvalidParameter", "io.edgeplan.Planner.InvalidInput",
                "io.edgeplan.Planner.UnknownModel",
                "org.varlink.service.MethodNotFound",
            ]
        )
    }
}
