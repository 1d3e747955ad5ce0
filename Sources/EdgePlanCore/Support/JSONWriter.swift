import Foundation

/// Writes compact JSON straight into bytes: the one place numbers and strings are formatted for the wire. A hot
/// reply (a `Plan`) is written field by field with it, without building a ``JSONValue`` tree first.
///
/// The bytes live in one buffer the writer owns (it is not copyable, so nothing else can hold it), appended to with
/// a capacity check and a copy: no array uniqueness checks per field.
public struct JSONWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int
    /// One bit per open container: set once it holds an element, so the next one is preceded by a comma.
    private var nonEmpty: UInt64 = 0
    private var depth = 0

    public init(capacity: Int = 1024) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// What has been written.
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    public mutating func beginObject() { open(UInt8(ascii: "{")) }
    public mutating func endObject() { close(UInt8(ascii: "}")) }
    public mutating func beginArray() { open(UInt8(ascii: "[")) }
    public mutating func endArray() { close(UInt8(ascii: "]")) }

    /// An object's key; its value is written next.
    public mutating func key(_ name: StaticString) {
        separate()
        reserve(name.utf8CodeUnitCount + 3)
        put(UInt8(ascii: "\""))
        name.withUTF8Buffer { put($0) }
        put(UInt8(ascii: "\""))
        put(UInt8(ascii: ":"))
        // The value that follows is this element, not a second one.
        nonEmpty &= ~(1 << UInt64(depth))
    }

    /// An object's key known only at run time.
    public mutating func key(_ name: String) {
        separate()
        writeString(name)
        append(UInt8(ascii: ":"))
        nonEmpty &= ~(1 << UInt64(depth))
    }

    public mutating func string(_ value: String) {
        separate()
        writeString(value)
    }

    public mutating func int(_ value: Int) {
        separate()
        writeInteger(value)
    }

    /// Integers as integers, six significant digits below 100,000 and three decimals above; not finite is `null`.
    public mutating func number(_ value: Double) {
        separate()
        if !value.isFinite {
            append(Self.null)
        } else if value == value.rounded() && abs(value) < 1e15 {
            writeInteger(Int(value))
        } else {
            // Large values (Unix times, long latencies in ms) keep three decimals, not six significant digits.
            let digits = abs(value) < 1e5 ? 6 : Int(log10(abs(value))) + 4
            value.withSignificantDigits(digits) { append($0) }
        }
    }

    public mutating func bool(_ value: Bool) {
        separate()
        append(value ? Self.true : Self.false)
    }

    public mutating func null() {
        separate()
        append(Self.null)
    }

    public mutating func string(_ value: String?) { if let value { string(value) } else { null() } }
    public mutating func int(_ value: Int?) { if let value { int(value) } else { null() } }
    public mutating func number(_ value: Double?) { if let value { number(value) } else { null() } }

    /// A whole value, compact.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case let .bool(value): bool(value)
        case let .int(value): int(value)
        case let .number(value): number(value)
        case let .string(value): string(value)
        case let .array(values):
            beginArray()
            for value in values { self.value(value) }
            endArray()
        case let .object(pairs):
            beginObject()
            for pair in pairs {
                key(pair.0)
                self.value(pair.1)
            }
            endObject()
        }
    }

    // MARK: Containers and commas

    private mutating func separate() {
        guard depth > 0 else { return }
        let bit: UInt64 = 1 << UInt64(depth)
        if nonEmpty & bit != 0 { append(UInt8(ascii: ",")) }
        nonEmpty |= bit
    }

    private mutating func open(_ bracket: UInt8) {
        separate()
        append(bracket)
        depth += 1
        precondition(depth < 64, "JSON nested deeper than 63 levels")
        nonEmpty &= ~(1 << UInt64(depth))
    }

    private mutating func close(_ bracket: UInt8) {
        depth -= 1
        append(bracket)
    }

    // MARK: Bytes

    private mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        let grown = max(capacity * 2, count + extra)
        let larger = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        larger.update(from: base, count: count)
        base.deallocate()
        base = larger
        capacity = grown
    }

    /// Appends without checking capacity: the caller reserved it.
    private mutating func put(_ byte: UInt8) {
        base[count] = byte
        count += 1
    }

    private mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        (base + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    private mutating func append(_ byte: UInt8) {
        reserve(1)
        put(byte)
    }

    private mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        reserve(bytes.count)
        put(bytes)
    }

    private mutating func append(_ literal: StaticString) {
        literal.withUTF8Buffer { append($0) }
    }

    private static let null: StaticString = "null", `true`: StaticString = "true", `false`: StaticString = "false"
    private static let hex: StaticString = "0123456789abcdef"

    /// Decimal digits, written from the right into a small buffer and appended at once.
    private mutating func writeInteger(_ value: Int) {
        reserve(20)
        var magnitude = value.magnitude
        var digits = 0
        var scratch = magnitude
        repeat {
            digits += 1
            scratch /= 10
        } while scratch > 0
        if value < 0 { put(UInt8(ascii: "-")) }
        var index = count + digits
        repeat {
            index -= 1
            base[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
        } while magnitude > 0
        count += digits
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped, everything else copied byte for
    /// byte; runs that need no escape are found eight bytes at a time and copied at once.
    private mutating func writeString(_ value: String) {
        var value = value
        value.withUTF8 { bytes in
            // The common case, nothing to escape, in one reservation.
            reserve(bytes.count + 2)
            put(UInt8(ascii: "\""))
            var run = 0
            var index = 0
            while index < bytes.count {
                if index + 8 <= bytes.count,
                    !Self.needsEscape(UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: UInt64.self))
                {
                    index += 8
                    continue
                }
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else {
                    index += 1
                    continue
                }
                append(UnsafeBufferPointer(rebasing: bytes[run..<index]))
                reserve(6 + bytes.count - index)
                put(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): put(byte)
                case UInt8(ascii: "\n"): put(UInt8(ascii: "n"))
                case UInt8(ascii: "\r"): put(UInt8(ascii: "r"))
                case UInt8(ascii: "\t"): put(UInt8(ascii: "t"))
                default:
                    Self.hex.withUTF8Buffer { hex in
                        put(UInt8(ascii: "u"))
                        put(UInt8(ascii: "0"))
                        put(UInt8(ascii: "0"))
                        put(hex[Int(byte >> 4)])
                        put(hex[Int(byte & 0xF)])
                    }
                }
                index += 1
                run = index
            }
            append(UnsafeBufferPointer(rebasing: bytes[run...]))
            append(UInt8(ascii: "\""))
        }
    }

    /// Whether any of eight bytes is a control character, a quote or a backslash (bytes of 0x80 and above, parts
    /// of UTF-8 sequences, never are).
    private static func needsEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZero(_ x: UInt64) -> Bool { (x &- ones) & ~x & highs != 0 }
        let ascii = ~word & highs
        // A byte below 0x20: subtracting 0x20 borrows into its high bit, which was clear.
        let control = (word &- 0x2020_2020_2020_2020) & ascii
        return control != 0 || hasZero(word ^ 0x2222_2222_2222_2222) || hasZero(word ^ 0x5C5C_5C5C_5C5C_5C5C)
    }
}

/// A value whose JSON is written field by field; its ``JSONValue`` is read back from those bytes, so the shape is
/// defined once.
public protocol JSONWritable {
    func writeJSON(to writer: inout JSONWriter)
}

extension JSONWritable {
    /// The value as a tree, read back from what ``writeJSON(to:)`` writes (always well-formed: it opens and closes
    /// every container itself).
    public var json: JSONValue {
        var writer = JSONWriter()
        writeJSON(to: &writer)
        return try! JSONValue.parse(writer.bytes)
    }
}
