/// An error raised by EdgePlan: a stable code plus a message naming what is wrong and where.
///
/// The daemon maps ``Code`` to Varlink error names in one place; the CLI prints ``description``.
public struct EdgePlanError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of problem this is.
    public enum Code: String, Sendable, Equatable {
        case invalidInput
        case invalidFile
        case unknownModel
        case unknownTask
        case unknownMode
        case infeasible
        case io
    }

    public let code: Code
    public let message: String
    /// The file the problem is in, when it comes from a file.
    public let file: String?
    /// The 1-based line in ``file``, when known.
    public let line: Int?
    /// The field (a dotted path) the problem is about, when known.
    public let field: String?

    public init(_ code: Code, _ message: String, file: String? = nil, line: Int? = nil, field: String? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
        self.field = field
    }

    public static func invalidInput(_ message: String, field: String? = nil) -> EdgePlanError {
        EdgePlanError(.invalidInput, message, field: field)
    }

    public static func invalidFile(
        _ message: String,
        file: String,
        line: Int? = nil,
        field: String? = nil
    ) -> EdgePlanError {
        EdgePlanError(.invalidFile, message, file: file, line: line, field: field)
    }

    public var description: String {
        var location = ""
        if let file {
            location = file
            if let line { location += ":\(line)" }
            location += ": "
        }
        if let field { location += "\(field): " }
        return location + message
    }
}
