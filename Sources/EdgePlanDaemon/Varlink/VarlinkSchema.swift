import EdgePlanCore

/// A Varlink interface description parsed into what calls and replies are checked against.
///
/// The text served by `GetInterfaceDescription` is the one schema: the dispatcher checks every call's parameters
/// against its method's input here (unknown, missing and mistyped fields are `InvalidParameter`), the tests check
/// every reply and error against the outputs and errors declared here, and `docs/` holds the same text.
public struct VarlinkSchema: Sendable {
    public indirect enum FieldType: Sendable, Equatable {
        case bool, int, float, string, object
        case optional(FieldType)
        case array(FieldType)
        case map(FieldType)
        case named(String)
        case structure([Field])
        case enumeration([String])
    }

    public struct Field: Sendable, Equatable {
        public var name: String
        public var type: FieldType
    }

    public struct Method: Sendable {
        public var input: [Field]
        public var output: [Field]
    }

    public let name: String
    public private(set) var types: [String: FieldType] = [:]
    public private(set) var methods: [String: Method] = [:]
    public private(set) var errors: [String: [Field]] = [:]

    /// Parses an interface description; a syntax error names the line.
    public init(parsing text: String) throws {
        var parser = Parser(text)
        guard parser.keyword("interface") else { throw parser.failure("expected 'interface'") }
        name = try parser.identifier()
        while !parser.atEnd {
            if parser.keyword("type") {
                let type = try parser.identifier()
                types[type] = try parser.type()
            } else if parser.keyword("method") {
                let method = try parser.identifier()
                guard case let .structure(input) = try parser.type() else {
                    throw parser.failure("method \(method) needs a parameter list")
                }
                guard parser.symbol("->") else { throw parser.failure("expected '->' after \(method)'s parameters") }
                guard case let .structure(output) = try parser.type() else {
                    throw parser.failure("method \(method) needs a result list")
                }
                methods[method] = Method(input: input, output: output)
            } else if parser.keyword("error") {
                let error = try parser.identifier()
                guard case let .structure(fields) = try parser.type() else {
                    throw parser.failure("error \(error) needs a field list")
                }
                errors[error] = fields
            } else {
                throw parser.failure("expected type, method or error")
            }
        }
    }

    /// The first field of `value` that does not match `fields` (unknown, missing or of the wrong type), or nil.
    public func mismatch(_ value: JSONValue, _ fields: [Field]) -> String? {
        mismatch(value, .structure(fields), path: "")
    }

    private func mismatch(_ value: JSONValue, _ type: FieldType, path: String) -> String? {
        switch type {
        case let .optional(wrapped): return value.isNull ? nil : mismatch(value, wrapped, path: path)
        case .bool: return value.boolValue == nil ? path : nil
        case .int: return value.intValue == nil ? path : nil
        case .float: return value.doubleValue == nil ? path : nil
        case .string: return value.stringValue == nil ? path : nil
        case .object: if case .object = value { return nil } else { return path }
        case let .enumeration(cases): return value.stringValue.map(cases.contains) == true ? nil : path
        case let .named(name):
            guard let resolved = types[name] else { return path }
            return mismatch(value, resolved, path: path)
        case let .array(element):
            guard case let .array(items) = value else { return path }
            for item in items { if let failed = mismatch(item, element, path: path) { return failed } }
            return nil
        case let .map(element):
            guard case let .object(pairs) = value else { return path }
            for (key, item) in pairs {
                if let failed = mismatch(item, element, path: join(path, key)) { return failed }
            }
            return nil
        case let .structure(fields):
            guard case let .object(pairs) = value else { return path }
            for (key, _) in pairs where !fields.contains(where: { $0.name == key }) { return join(path, key) }
            for field in fields {
                let item = pairs.first { $0.0 == field.name }?.1 ?? .null
                if let failed = mismatch(item, field.type, path: join(path, field.name)) { return failed }
            }
            return nil
        }
    }

    private func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

/// Reads the Varlink interface grammar: comments, names, and the type expressions of fields.
private struct Parser {
    private let bytes: [UInt8]
    private var index = 0

    init(_ text: String) {
        bytes = Array(text.utf8)
        skipSpace()
    }

    var atEnd: Bool { index >= bytes.count }

    func failure(_ message: String) -> EdgePlanError {
        let line = bytes[..<min(index, bytes.count)].filter { $0 == UInt8(ascii: "\n") }.count + 1
        return EdgePlanError(.invalidFile, "interface description, line \(line): \(message)")
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "#") {
                while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
            } else if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\t")
                || byte == UInt8(ascii: "\r")
            {
                index += 1
            } else {
                return
            }
        }
    }

    private func isNameByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: ".")
    }

    private func peekName() -> (String, Int)? {
        var end = index
        while end < bytes.count && isNameByte(bytes[end]) { end += 1 }
        return end > index ? (String(decoding: bytes[index..<end], as: UTF8.self), end) : nil
    }

    mutating func identifier() throws -> String {
        guard let (name, end) = peekName() else { throw failure("expected a name") }
        index = end
        skipSpace()
        return name
    }

    mutating func keyword(_ word: String) -> Bool {
        guard let (name, end) = peekName(), name == word else { return false }
        index = end
        skipSpace()
        return true
    }

    mutating func symbol(_ text: String) -> Bool {
        let expected = Array(text.utf8)
        guard index + expected.count <= bytes.count, Array(bytes[index..<index + expected.count]) == expected else {
            return false
        }
        index += expected.count
        skipSpace()
        return true
    }

    mutating func type() throws -> VarlinkSchema.FieldType {
        if symbol("?") { return .optional(try type()) }
        if symbol("[]") { return .array(try type()) }
        if symbol("[string]") { return .map(try type()) }
        if symbol("(") {
            if symbol(")") { return .structure([]) }
            var fields: [VarlinkSchema.Field] = []
            var names: [String] = []
            repeat {
                let name = try identifier()
                if symbol(":") {
                    fields.append(.init(name: name, type: try type()))
                } else {
                    names.append(name)
                }
            } while symbol(",")
            guard symbol(")") else { throw failure("expected ')'") }
            guard fields.isEmpty || names.isEmpty else { throw failure("a list mixes fields and enum cases") }
            return names.isEmpty ? .structure(fields) : .enumeration(names)
        }
        let name = try identifier()
        switch name {
        case "bool": return .bool
        case "int": return .int
        case "float": return .float
        case "string": return .string
        case "object": return .object
        default: return .named(name)
        }
    }
}
