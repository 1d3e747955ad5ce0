import Foundation
import Testing

@testable import EdgePlanCore

/// `docs/policy.md` against the decoder: its example decodes, and its tables name exactly the keys the decoder reads.
@Suite struct PolicyReferenceTests {
    static let reference = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("docs/policy.md")

    @Test func theReferenceNamesExactlyTheKeysTheDecoderReads() throws {
        let text = try String(contentsOf: Self.reference, encoding: .utf8)
        let example = try #require(
            text.components(separatedBy: "```yaml\n").dropFirst().first?.components(separatedBy: "```").first
        )
        let log = YAMLObject.KeyLog()
        let policy = try YAMLObject.$keyLog.withValue(log) { try PolicyDecoder.decode(example, file: "docs/policy.md") }
        #expect(policy.tasks["grasp-plan"]?.like == "mmlu-redux")
        #expect(policy.tasks["grasp-plan"]?.defaultDeadlineS == 8)
        #expect(policy.explore == .thompson(maxLoss: 0.05, rate: 0.1))
        // What the decoder asked for, with task class names generalized.
        let read = Set(
            log.keys.map { path -> String in
                let parts = path.split(separator: ".", maxSplits: 2).map(String.init)
                if parts.first == "global" && parts.count == 3 && parts[1] == "endpoints" {
                    return "global.endpoints.<model>"
                }
                return parts.first == "tasks" && parts.count == 3 ? "tasks.<class>.\(parts[2])" : path
            }
        )
        // What the tables document: every backticked key in a row's first column.
        var documented: Set<String> = []
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let column = line.split(separator: "|")[0]
            documented.formUnion(
                column.split(separator: "`").enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            )
        }
        #expect(
            read.subtracting(documented).isEmpty,
            "read but not documented: \(read.subtracting(documented).sorted())"
        )
        #expect(
            documented.subtracting(read).isEmpty,
            "documented but not read: \(documented.subtracting(read).sorted())"
        )
        #expect(read.count > 30)
    }
}
