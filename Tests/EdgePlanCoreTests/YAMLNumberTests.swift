import Testing
import Yams

@testable import EdgePlanCore

/// Numbers in profiles and policies are read directly when they are plain decimals; every form must read exactly
/// as the YAML library reads it, or fail the same way.
struct YAMLNumberTests {
    static let texts = [
        "1", "-2.5", "1e3", "+4", ".5", "1.", "6.02E23", "007", "1_000", "010", "-010", "0", "-7", "0x10", "0o17",
        "1:30", "'2.5'", "\"3\"",
        ".inf", "-.inf", ".nan", "1e", "--1", "1-2", "e5", "+", "12345678901234567890", "-0", "0.1e-2",
    ]

    @Test func numbersReadAsTheYAMLLibraryReadsThem() throws {
        for text in Self.texts {
            var object = try YAMLObject.parse("x: \(text)\n", file: "test.yaml")
            let node = try Yams.compose(yaml: "x: \(text)\n", .basic)!.mapping!["x"]!
            let library = node.scalar == nil ? nil : node.float ?? node.int.map(Double.init)
            let expected = library.flatMap { $0.isFinite ? $0 : nil }
            let read = try? object.double("x")
            #expect(
                read == expected,
                "\(text): read \(String(describing: read)), the library \(String(describing: library))"
            )
            var again = try YAMLObject.parse("x: \(text)\n", file: "test.yaml")
            #expect((try? again.int("x")) == node.int, "\(text) as an integer")
        }
    }
}
