import Foundation
import Testing

@testable import EdgePlanCore

/// The GGUF header reader on a header written byte by byte: the shape keys of its architecture, key/value heads
/// given per layer (the largest counts), signed values, a tensor table, and errors that say where the bytes end.
struct GGUFHeaderTests {
    static func le(_ value: UInt64, _ bytes: Int) -> [UInt8] {
        (0..<bytes).map { UInt8(value >> (8 * UInt64($0)) & 0xff) }
    }
    static func string(_ text: String) -> [UInt8] { le(UInt64(text.utf8.count), 8) + Array(text.utf8) }
    static func key(_ name: String, u32 value: UInt32) -> [UInt8] { string(name) + le(4, 4) + le(UInt64(value), 4) }

    static var header: [UInt8] {
        var bytes = Array("GGUF".utf8) + le(3, 4) + le(1, 8) + le(6, 8)
        bytes += string("general.architecture") + le(8, 4) + string("qwen2")
        bytes += key("qwen2.block_count", u32: 28) + key("qwen2.embedding_length", u32: 1536)
        bytes += key("qwen2.attention.head_count", u32: 12)
        // Key/value heads per layer, as int32s: the largest is the cache's bound.
        bytes += string("qwen2.attention.head_count_kv") + le(9, 4) + le(5, 4) + le(3, 8)
        bytes += le(2, 4) + le(4, 4) + le(2, 4)
        // A signed value: -1 as an int32.
        bytes += string("general.quantization_version") + le(5, 4) + le(0xffff_ffff, 4)
        bytes += string("token_embd.weight") + le(2, 4) + le(1536, 8) + le(100, 8) + le(1, 4) + le(0, 8)
        return bytes
    }

    @Test func aHeaderGivesTheShapeItsArchitectureNames() throws {
        let header = try GGUFHeader.parse(Self.header, file: "m.gguf")
        #expect(header.architecture == "qwen2" && header.layers == 28 && header.embedding == 1536)
        #expect(header.heads == 12 && header.kvHeads == 4 && header.headDimension == 128)
        #expect(header.parameters == 153_600 && header.tensors == 1 && header.contextTokens == nil)
        let shape = header.architecture(weightBytes: 3e9, contextTokens: 4096)
        #expect(shape.kvCacheBytesPerToken == 2 * 28 * 4 * 128 * 2)
    }

    @Test func aCutOrForeignFileIsNamedWithWhereItEnds() {
        #expect {
            try GGUFHeader.parse(Array(Self.header.prefix(60)), file: "cut.gguf")
        } throws: { "\($0)".contains("ends at byte 60") && "\($0)".contains("cut.gguf") }
        #expect {
            try GGUFHeader.parse(Array("PK\u{3}\u{4}".utf8) + Self.header, file: "z.zip")
        } throws: { "\($0)".contains("not a GGUF file") }
    }
}
