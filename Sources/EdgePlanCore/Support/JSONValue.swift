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
    public var isNull: Bool { if case .null = self { true } else { false } }

    /// Compact JSON text.
    public func serialized(pretty: Bool = false) -> String {
        String(decoding: utf8(pretty: pretty), as: UTF8.self)
    }

    /// Compact (or pretty) JSON as UTF-8 bytes, built byte by byte: what a reply on the socket is written from.
    public func utf8(pretty: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        write(into: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(into out: inout [UInt8], pretty: Bool, indent: Int) {
        switch self {
        case .null: out += Self.nullBytes
        case let .bool(value): out += value ? Self.trueBytes : Self.falseBytes
        case let .int(value): Self.writeInteger(value, into: &out)
        case let .number(value):
            if !value.isFinite {
                out += Self.nullBytes
            } else if value == value.rounded() && abs(value) < 1e15 {
                Self.writeInteger(Int(value), into: &out)
            } else if abs(value) < 1e5 {
                Self.writeText(value.significantDigits(6), into: &out)
            } else {
                // Large values (Unix times, long latencies in ms) keep three decimals, not six significant digits.
                Self.writeText(value.significantDigits(Int(log10(abs(value))) + 4), into: &out)
            }
        case let .string(value): Self.writeString(value, into: &out)
        case let .array(values):
            out.append(UInt8(ascii: "["))
            var first = true
            for value in values {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                if pretty { Self.newline(indent + 1, into: &out) }
                value.write(into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty && !values.isEmpty { Self.newline(indent, into: &out) }
            out.append(UInt8(ascii: "]"))
        case let .object(pairs):
            out.append(UInt8(ascii: "{"))
            var first = true
            for pair in pairs {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                if pretty { Self.newline(indent + 1, into: &out) }
                Self.writeString(pair.0, into: &out)
                out.append(UInt8(ascii: ":"))
                if pretty { out.append(UInt8(ascii: " ")) }
                pair.1.write(into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty && !pairs.isEmpty { Self.newline(indent, into: &out) }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let nullBytes = Array("null".utf8), trueBytes = Array("true".utf8), falseBytes = Array("false".utf8)
    private static let hex = Array("0123456789abcdef".utf8)

    private static func newline(_ indent: Int, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\n"))
        out += repeatElement(UInt8(ascii: " "), count: 2 * indent)
    }

    /// Decimal digits, written from the right into a small buffer and appended at once.
    private static func writeInteger(_ value: Int, into out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var magnitude = value.magnitude, index = 20
            repeat {
                index -= 1
                digits[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { out.append(UInt8(ascii: "-")) }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[index...]))
        }
    }

    /// Text that needs no escaping (a formatted number), appended as it is.
    private static func writeText(_ text: String, into out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped, everything else copied byte for
    /// byte; runs that need no escape are copied at once.
    private static func writeString(_ value: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in
            var run = 0
            for index in bytes.indices {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<index]))
                run = index + 1
                let backslash = UInt8(ascii: "\\")
                switch byte {
                case UInt8(ascii: "\""), backslash: out.append(backslash); out.append(byte)
                case UInt8(ascii: "\n"): out.append(backslash); out.append(UInt8(ascii: "n"))
                case UInt8(ascii: "\r"): out.append(backslash); out.append(UInt8(ascii: "r"))
                case UInt8(ascii: "\t"): out.append(backslash); out.append(UInt8(ascii: "t"))
                default: out += [backslash, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...]))
        }
        out.append(UInt8(ascii: "\""))
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
