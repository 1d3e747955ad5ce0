import Foundation

/// A model's shape as its GGUF file's header states it: the metadata llama.cpp itself reads (layers, embedding,
/// attention heads, key/value heads, head size, trained context) and the tensors' element counts. Read from the
/// file's first bytes; the weights themselves are never read.
public struct GGUFHeader: Sendable, Equatable {
    public var version: Int
    public var architecture: String
    public var layers: Int
    public var embedding: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDimension: Int
    public var contextTokens: Int?
    /// `general.file_type` (llama.cpp's numbering: 1 F16, 7 Q8_0, 15 Q4_K_M, ...), where the file says.
    public var fileType: Int?
    /// Elements of every tensor, summed: the parameter count.
    public var parameters: Double
    public var tensors: Int

    /// The shape for a collected trace: the weights' size is the file's (or the engine's word on it).
    public func architecture(weightBytes: Double, contextTokens: Int) -> CollectedTrace.Architecture {
        CollectedTrace.Architecture(
            parameters: parameters,
            layers: layers,
            embedding: embedding,
            kvHeads: kvHeads,
            headDimension: headDimension,
            contextTokens: contextTokens,
            weightBytes: weightBytes
        )
    }

    /// Parses the header at the start of `bytes` (a prefix of the file is enough when it holds the metadata and
    /// the tensor table). Errors name what is wrong and at which byte.
    public static func parse(_ bytes: [UInt8], file: String) throws -> GGUFHeader {
        var reader = Reader(bytes: bytes, file: file)
        guard bytes.count >= 4, bytes[0..<4] == [0x47, 0x47, 0x55, 0x46] else {
            throw EdgePlanError.invalidFile("not a GGUF file (it does not start with 'GGUF')", file: file)
        }
        reader.offset = 4
        let version = Int(try reader.u32("the version"))
        guard (2...3).contains(version) else {
            throw EdgePlanError.invalidFile("GGUF version \(version) is not one this reader knows (2 or 3)", file: file)
        }
        let tensorCount = try reader.u64("the tensor count")
        let keyCount = try reader.u64("the metadata count")
        guard tensorCount < 1_000_000, keyCount < 1_000_000 else {
            throw EdgePlanError.invalidFile(
                "GGUF header claims \(tensorCount) tensors and \(keyCount) metadata keys: not a model file",
                file: file
            )
        }
        var values: [String: Value] = [:]
        for _ in 0..<keyCount {
            let key = try reader.string("a metadata key")
            let type = try reader.u32("the type of \(key)")
            values[key] = try reader.value(type: type, key: key)
        }
        var parameters = 0.0
        for _ in 0..<tensorCount {
            let name = try reader.string("a tensor name")
            let dimensions = try reader.u32("the dimensions of \(name)")
            guard dimensions <= 8 else {
                throw EdgePlanError.invalidFile("tensor \(name) claims \(dimensions) dimensions", file: file)
            }
            var elements = 1.0
            for _ in 0..<dimensions { elements *= Double(try reader.u64("a dimension of \(name)")) }
            _ = try reader.u32("the type of \(name)")
            _ = try reader.u64("the offset of \(name)")
            parameters += elements
        }
        guard case let .string(architecture)? = values["general.architecture"] else {
            throw EdgePlanError.invalidFile("the GGUF header has no general.architecture", file: file)
        }
        func integer(_ key: String) throws -> Int {
            guard let value = values["\(architecture).\(key)"]?.integer else {
                throw EdgePlanError.invalidFile(
                    "the GGUF header has no \(architecture).\(key): its shape cannot be read from it",
                    file: file
                )
            }
            return value
        }
        let embedding = try integer("embedding_length")
        let heads = try integer("attention.head_count")
        guard heads > 0, embedding > 0 else {
            throw EdgePlanError.invalidFile(
                "the GGUF header gives \(heads) heads for \(embedding) dimensions",
                file: file
            )
        }
        return GGUFHeader(
            version: version,
            architecture: architecture,
            layers: try integer("block_count"),
            embedding: embedding,
            heads: heads,
            kvHeads: values["\(architecture).attention.head_count_kv"]?.integer ?? heads,
            headDimension: values["\(architecture).attention.key_length"]?.integer ?? embedding / heads,
            contextTokens: values["\(architecture).context_length"]?.integer,
            fileType: values["general.file_type"]?.integer,
            parameters: parameters,
            tensors: Int(tensorCount)
        )
    }

    /// A metadata value, as far as a shape needs it (arrays are skipped, save for their largest integer: some
    /// files give key/value heads per layer).
    enum Value {
        case integer(Int)
        case string(String)
        case other

        var integer: Int? { if case let .integer(value) = self { value } else { nil } }
    }

    struct Reader {
        let bytes: [UInt8]
        let file: String
        var offset = 0

        mutating func take(_ count: Int, _ what: String) throws -> ArraySlice<UInt8> {
            guard count >= 0, offset + count <= bytes.count else {
                throw EdgePlanError.invalidFile(
                    "the GGUF header ends at byte \(bytes.count), in \(what) (byte \(offset))",
                    file: file
                )
            }
            defer { offset += count }
            return bytes[offset..<(offset + count)]
        }

        mutating func little(_ count: Int, _ what: String) throws -> UInt64 {
            try take(count, what).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }

        mutating func u32(_ what: String) throws -> UInt32 { UInt32(try little(4, what)) }
        mutating func u64(_ what: String) throws -> UInt64 { try little(8, what) }

        mutating func string(_ what: String) throws -> String {
            let length = try u64("the length of \(what)")
            guard length <= 1 << 24 else {
                throw EdgePlanError.invalidFile("\(what) at byte \(offset) claims \(length) bytes", file: file)
            }
            return String(decoding: try take(Int(length), what), as: UTF8.self)
        }

        /// Sizes of the fixed-size types: uint8, int8, uint16, int16, uint32, int32, float32, bool; uint64, int64,
        /// float64.
        static let sizes: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
        static let signed: Set<UInt32> = [1, 3, 5, 11]

        mutating func value(type: UInt32, key: String) throws -> Value {
            switch type {
            case 8: return .string(try string("the value of \(key)"))
            case 9:
                let element = try u32("the element type of \(key)")
                let count = try u64("the length of \(key)")
                guard count <= 1 << 26 else {
                    throw EdgePlanError.invalidFile("\(key) claims \(count) elements", file: file)
                }
                if element == 8 {
                    for _ in 0..<count { _ = try string("an element of \(key)") }
                    return .other
                }
                guard let size = Self.sizes[element], element != 6, element != 12 else {
                    if let size = Self.sizes[element] {
                        _ = try take(size * Int(count), "the elements of \(key)")
                        return .other
                    }
                    throw EdgePlanError.invalidFile("\(key) holds arrays of type \(element), unknown", file: file)
                }
                var largest: Int?
                for _ in 0..<count {
                    let value = Int(truncatingIfNeeded: try little(size, "an element of \(key)"))
                    largest = max(largest ?? value, value)
                }
                return largest.map(Value.integer) ?? .other
            default:
                guard let size = Self.sizes[type] else {
                    throw EdgePlanError.invalidFile("\(key) has type \(type), unknown (byte \(offset))", file: file)
                }
                let raw = try little(size, "the value of \(key)")
                if type == 6 || type == 12 { return .other }
                if Self.signed.contains(type) {
                    let shift = UInt64(64 - size * 8)
                    return .integer(Int(Int64(bitPattern: raw << shift) >> Int64(shift)))
                }
                return .integer(Int(truncatingIfNeeded: raw))
            }
        }
    }
}
