import EdgePlanCore
import Foundation

/// Turns one Varlink call into its reply: `org.varlink.service` and `io.edgeplan.Planner`.
public struct VarlinkDispatcher: Sendable {
    public let service: PlannerService
    public let watchdog: Watchdog?
    public static let version = EdgePlanVersion.string

    public init(service: PlannerService, watchdog: Watchdog? = nil) {
        self.service = service
        self.watchdog = watchdog
    }

    /// The reply to one message, or nil for a `oneway` call. Never throws: every failure is an error reply.
    public func handle(_ frame: some Collection<UInt8>) -> JSONValue? {
        let call: JSONValue
        do { call = try JSONValue.parse(frame) } catch {
            service.countError()
            return VarlinkError("org.varlink.service.InvalidParameter", .fields(["parameter": .string("message"), "message": .string("\(error)")])).json
        }
        guard let method = call["method"]?.stringValue else {
            service.countError()
            return VarlinkError.invalidParameter("method").json
        }
        let parameters = call["parameters"] ?? .object([])
        let reply: JSONValue
        do {
            guard case .object = parameters else { throw VarlinkError.invalidParameter("parameters") }
            reply = .object([("parameters", try dispatch(method, parameters))])
        } catch let error as VarlinkError {
            if !error.name.hasSuffix(".Infeasible") { service.countError() }
            reply = error.json
        } catch let error as EdgePlanError {
            service.countError()
            reply = VarlinkError.from(error, task: parameters["task"]?.stringValue ?? "", knownTasks: service.planner.profile.tasks).json
        } catch {
            service.countError()
            reply = VarlinkError("org.varlink.service.InvalidParameter", .fields(["parameter": .string(""), "message": .string("\(error)")])).json
        }
        if call["oneway"]?.boolValue == true { return nil }
        return reply
    }

    private func dispatch(_ method: String, _ parameters: JSONValue) throws -> JSONValue {
        switch method {
        case "org.varlink.service.GetInfo":
            return .fields([
                "vendor": .string("EdgePlan"), "product": .string("edgeplan"), "version": .string(Self.version),
                "url": .string("https://edgeplan.invalid/"),
                "interfaces": .array([.string("org.varlink.service"), .string(PlannerInterface.name)]),
            ])
        case "org.varlink.service.GetInterfaceDescription":
            let interface = try string(parameters, "interface")
            switch interface {
            case PlannerInterface.name: return .object([("description", .string(PlannerInterface.description))])
            case "org.varlink.service": return .object([("description", .string(Self.serviceDescription))])
            default: throw VarlinkError("org.varlink.service.InterfaceNotFound", .object([("interface", .string(interface))]))
            }
        case "io.edgeplan.Planner.Plan": return try plan(parameters)
        case "io.edgeplan.Planner.Frontier":
            let front = try service.planner.front(task: try string(parameters, "task"), inputTokens: try int(parameters, "inputTokens"))
            return front.json
        case "io.edgeplan.Planner.Report": return try report(parameters)
        case "io.edgeplan.Planner.Status": return status()
        default:
            let interface = method.split(separator: ".").dropLast().joined(separator: ".")
            if interface != PlannerInterface.name && interface != "org.varlink.service" {
                throw VarlinkError("org.varlink.service.InterfaceNotFound", .object([("interface", .string(interface))]))
            }
            throw VarlinkError("org.varlink.service.MethodNotFound", .object([("method", .string(method))]))
        }
    }

    private func plan(_ parameters: JSONValue) throws -> JSONValue {
        let request = PlanRequest(
            task: try string(parameters, "task"),
            deadlineS: try double(parameters, "deadlineMs") / 1000,
            energyBudgetJ: try optionalDouble(parameters, "energyBudgetJ"),
            inputTokens: try int(parameters, "inputTokens"),
            minAccuracy: try optionalDouble(parameters, "minAccuracy"),
            requestID: try optionalString(parameters, "requestId"))
        switch try service.plan(request) {
        case let .plan(plan):
            return .object([("plan", plan.json)])
        case let .infeasible(reason):
            throw VarlinkError("\(PlannerInterface.name).Infeasible", .fields([
                "task": .string(reason.task), "limit": .string(reason.limit.rawValue), "message": .string(reason.message),
                "missBy": reason.missBy.map(JSONValue.number) ?? .null, "closest": reason.closest?.json ?? .object([]),
            ]))
        }
    }

    private func report(_ parameters: JSONValue) throws -> JSONValue {
        let quantRaw = try string(parameters, "quantization")
        guard let quantization = Quantization(rawValue: quantRaw) else { throw VarlinkError.invalidParameter("quantization") }
        let modeRaw = try string(parameters, "mode")
        guard let mode = LengthMode(rawValue: modeRaw) else { throw VarlinkError.invalidParameter("mode") }
        let parallel = try int(parameters, "parallel")
        guard (1...256).contains(parallel) else { throw VarlinkError.invalidParameter("parallel") }
        let input = try int(parameters, "inputTokens")
        guard (1...PlanRequest.maxInputTokens).contains(input) else { throw VarlinkError.invalidParameter("inputTokens") }
        let output = try int(parameters, "outputTokens")
        guard (0...10_000_000).contains(output) else { throw VarlinkError.invalidParameter("outputTokens") }
        let latencyMs = try double(parameters, "latencyMs")
        guard latencyMs > 0, latencyMs < 1e9 else { throw VarlinkError.invalidParameter("latencyMs") }
        let energy = try optionalDouble(parameters, "energyJ")
        if let energy, !(energy >= 0 && energy < 1e9) { throw VarlinkError.invalidParameter("energyJ") }
        let budget = try optionalInt(parameters, "tokenBudget")
        if let budget, budget <= 0 { throw VarlinkError.invalidParameter("tokenBudget") }
        let correct: Bool?
        if let value = parameters["correct"], !value.isNull {
            guard let flag = value.boolValue else { throw VarlinkError.invalidParameter("correct") }
            correct = flag
        } else {
            correct = nil
        }
        let outcome = OutcomeReport(
            requestID: try string(parameters, "requestId"), model: try string(parameters, "model"), quantization: quantization,
            mode: mode, tokenBudget: budget, parallel: parallel, inputTokens: input, outputTokens: output,
            latencyS: latencyMs / 1000, energyJ: energy, startedAt: try optionalDouble(parameters, "startedAt"), correct: correct)
        let predicted = try service.report(outcome)
        let attributed = watchdog?.record(outcome)
        return .fields([
            "accepted": .bool(true), "predictedLatencyMs": .number(predicted * 1000),
            "latencyErrorPct": .number((outcome.latencyS - predicted) / predicted * 100),
            "attributedEnergyJ": attributed.map(JSONValue.number) ?? .null,
        ])
    }

    private func status() -> JSONValue {
        let planner = service.planner
        let counters = service.currentCounters
        return .fields([
            "version": .string(Self.version), "uptimeS": .number(Date().timeIntervalSince(service.startedAt)),
            "device": .string(planner.profile.device.name), "profileVersion": .string(planner.profile.version),
            "policyVersion": .string(planner.policy.version), "lastReloadError": service.lastReloadError.map(JSONValue.string) ?? .null,
            "plans": .int(counters.plans), "infeasible": .int(counters.infeasible), "errors": .int(counters.errors),
            "reports": .int(counters.reports), "reloads": .int(counters.reloads), "cachedFronts": .int(planner.cachedFronts),
            "journalDropped": .int(service.journal?.counters.dropped ?? 0),
            "journalFailed": .int(service.journal?.counters.failed ?? 0),
            "calibration": watchdog?.statusJSON ?? .null,
        ])
    }

    // MARK: Typed parameter access; a wrong or missing type is InvalidParameter naming the field.

    private func string(_ p: JSONValue, _ key: String) throws -> String {
        guard let value = p[key]?.stringValue else { throw VarlinkError.invalidParameter(key) }
        return value
    }

    private func optionalString(_ p: JSONValue, _ key: String) throws -> String? {
        guard let value = p[key], !value.isNull else { return nil }
        guard let string = value.stringValue else { throw VarlinkError.invalidParameter(key) }
        return string
    }

    private func double(_ p: JSONValue, _ key: String) throws -> Double {
        guard let value = p[key]?.doubleValue, value.isFinite else { throw VarlinkError.invalidParameter(key) }
        return value
    }

    private func optionalDouble(_ p: JSONValue, _ key: String) throws -> Double? {
        guard let value = p[key], !value.isNull else { return nil }
        guard let number = value.doubleValue, number.isFinite else { throw VarlinkError.invalidParameter(key) }
        return number
    }

    private func int(_ p: JSONValue, _ key: String) throws -> Int {
        guard let value = p[key]?.intValue else { throw VarlinkError.invalidParameter(key) }
        return value
    }

    private func optionalInt(_ p: JSONValue, _ key: String) throws -> Int? {
        guard let value = p[key], !value.isNull else { return nil }
        guard let number = value.intValue else { throw VarlinkError.invalidParameter(key) }
        return number
    }

    static let serviceDescription = """
    # The Varlink Service Interface is provided by every varlink service.
    interface org.varlink.service

    method GetInfo() -> (vendor: string, product: string, version: string, url: string, interfaces: []string)

    method GetInterfaceDescription(interface: string) -> (description: string)

    error InterfaceNotFound (interface: string)
    error MethodNotFound (method: string)
    error MethodNotImplemented (method: string)
    error InvalidParameter (parameter: string)
    error PermissionDenied ()
    error ExpectedMore ()
    """
}
