import Foundation

/// A JSON value with deterministic, allocation-light serialization; the wire format of the CLI and the daemon.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case int(Int)
    case string(String)
    case array([JSONValue])
    /// Keys keep their insertion order.
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool { lhs.serialized() == rhs.serialized() }

    /// An object from ordered key–value pairs.
    public static func fields(_ pairs: KeyValuePairs<String, JSONValue>) -> JSONValue {
        .object(pairs.map { ($0.key, $0.value) })
    }

    /// Parses JSON text; errors say what is wrong and where.
    public static func parse(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        var parser = JSONParser(bytes: Array(bytes))
        return try parser.parseDocument()
    }

    public subscript(key: String) -> JSONValue? {
        guard case let .object(pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    public var stringValue: String? { if case let .string(value) = self { value } else { nil } }
    public var doubleValue: Double? {
        switch self {
        case let .number(value): value
        case let .int(value): Double(value)
        default: nil
        }
    }
    public var intValue: Int? {
        switch self {
        case let .int(value): value
        case let .number(value) where value == value.rounded() && abs(value) < 9e15: Int(value)
        default: nil
        }
    }
    public var boolValue: Bool? { if case let .bool(value) = self { value } else { nil } }
    public var arrayValue: [JSONValue]? { if case let .array(value) = self { value } else { nil } }
    public var isNull: Bool { if case .null = self { true } else { false } }

    /// Compact JSON text.
    public func serialized(pretty: Bool = false) -> String {
        String(decoding: utf8(pretty: pretty), as: UTF8.self)
    }

    /// Compact (or pretty) JSON as UTF-8 bytes: what a reply on the socket is written from.
    public func utf8(pretty: Bool = false) -> [UInt8] {
        guard pretty else {
            var writer = JSONWriter()
            writer.value(self)
            return writer.bytes
        }
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        writePretty(into: &out, indent: 0)
        return out
    }

    /// Indented JSON for people: containers over several lines, scalars as the compact writer gives them.
    private func writePretty(into out: inout [UInt8], indent: Int) {
        switch self {
        case let .array(values):
            out.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.newline(indent + 1, into: &out)
                value.writePretty(into: &out, indent: indent + 1)
            }
            if !values.isEmpty { Self.newline(indent, into: &out) }
            out.append(UInt8(ascii: "]"))
        case let .object(pairs):
            out.append(UInt8(ascii: "{"))
            for (index, (key, value)) in pairs.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.newline(indent + 1, into: &out)
                out += JSONValue.string(key).utf8()
                out.append(contentsOf: ": ".utf8)
                value.writePretty(into: &out, indent: indent + 1)
            }
            if !pairs.isEmpty { Self.newline(indent, into: &out) }
            out.append(UInt8(ascii: "}"))
        default:
            out += utf8()
        }
    }

    private static func newline(_ indent: Int, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\n"))
        out += repeatElement(UInt8(ascii: " "), count: 2 * indent)
    }
}

extension Optional where Wrapped == Double {
    var json: JSONValue { map(JSONValue.number) ?? .null }
}

extension Optional where Wrapped == Int {
    var json: JSONValue { map(JSONValue.int) ?? .null }
}

extension Optional where Wrapped == String {
    var json: JSONValue { map(JSONValue.string) ?? .null }
}
