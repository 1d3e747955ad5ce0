import EdgePlanCore

/// A Varlink error reply: a qualified error name and its parameters.
public struct VarlinkError: Error, Sendable {
    public var name: String
    public var parameters: JSONValue

    public init(_ name: String, _ parameters: JSONValue = .object([])) {
        self.name = name
        self.parameters = parameters
    }

    public static func invalidParameter(_ parameter: String) -> VarlinkError {
        VarlinkError("org.varlink.service.InvalidParameter", .object([("parameter", .string(parameter))]))
    }

    /// A value of the right type that is still wrong (out of range, malformed), with a message saying why.
    public static func invalidInput(_ parameter: String, _ message: String) -> VarlinkError {
        VarlinkError(
            "\(PlannerInterface.name).InvalidInput",
            .fields(["parameter": .string(parameter), "message": .string(message)])
        )
    }

    /// The one place EdgePlan error codes become Varlink error names; `parameters` are the call's, so the error can
    /// name the task or model the caller sent.
    public static func from(_ error: EdgePlanError, parameters: JSONValue, knownTasks: [String]) -> VarlinkError {
        let task = parameters["task"]?.stringValue ?? ""
        return switch error.code {
        case .unknownTask:
            VarlinkError(
                "\(PlannerInterface.name).UnknownTask",
                .fields([
                    "task": .string(task), "known": .array(knownTasks.map(JSONValue.string)),
                    "message": .string(error.message),
                ])
            )
        case .unknownModel, .unknownMode:
            VarlinkError(
                "\(PlannerInterface.name).UnknownModel",
                .fields(["model": .string(parameters["model"]?.stringValue ?? ""), "message": .string(error.message)])
            )
        case .invalidInput, .invalidFile, .infeasible, .io:
            invalidInput(error.field ?? "", error.message)
        }
    }

    public var json: JSONValue { .object([("error", .string(name)), ("parameters", parameters)]) }
}
