import Foundation
import Testing

@testable import EdgePlanCore

/// The binary carries the bundled profile already decoded (`BundledProfile.swift`), so that no process parses its
/// YAML at start. This test is what writes that file, and it fails when the file is not what the bundled YAML
/// decodes to.
struct BundledProfileTests {
    static let path = "Sources/EdgePlanCore/Resources/BundledProfile.swift"

    @Test func decodedProfileIsWhatTheBundledFilesDecodeTo() throws {
        let decoded = try ProfileDecoder.decode(BundledResources.profileFiles)
        let expected = Self.source(of: decoded)
        let file = "\(Fixtures.repositoryRoot)/\(Self.path)"
        if ProcessInfo.processInfo.environment["EDGEPLAN_REGENERATE"] != nil {
            try expected.write(toFile: file, atomically: true, encoding: .utf8)
        }
        let committed = try String(contentsOfFile: file, encoding: .utf8)
        #expect(
            committed == expected,
            "\(Self.path) is stale: run EDGEPLAN_REGENERATE=1 swift test --filter BundledProfileTests"
        )
        // What the binary was built with, compared value by value.
        let built = BundledResources.decodedProfile
        #expect(built.device == decoded.device)
        #expect(built.variants == decoded.variants)
        #expect(built.accuracy == decoded.accuracy)
        #expect(built.version == decoded.version)
    }

    /// The Swift source of `BundledProfile.swift` for a profile: one constant per variant and per table, so that
    /// no single expression is large.
    static func source(of profile: ProfileSet) -> String {
        let variants = profile.variants.sorted { $0.key < $1.key }.map(\.value)
        let tables = profile.accuracy.sorted { $0.key < $1.key }.map(\.value)
        var lines =
            [
                "// Generated from the bundled profile's files by BundledProfileTests; do not edit.",
                "// After scripts/embed-resources.py, run: EDGEPLAN_REGENERATE=1 swift test --filter BundledProfileTests",
                "",
                "extension BundledResources {",
                "    /// The bundled profile as `profileFiles` decode to, built into the binary so that no process parses it.",
                "    public static let decodedProfile = ProfileSet(",
                "        device: device,",
                "        variants: [",
            ] + variants.indices.map { "            variant\($0).id: variant\($0)," } + [
                "        ],",
                "        accuracy: [",
            ] + tables.indices.map { "            table\($0).task: table\($0)," } + [
                "        ],",
                "        version: \(profile.version.debugDescription))",
                "",
                "    private static let device = \(SwiftLiteral.expression(profile.device, indent: "    "))",
            ]
        for (index, variant) in variants.enumerated() {
            lines += [
                "", "    private static let variant\(index) = \(SwiftLiteral.expression(variant, indent: "    "))",
            ]
        }
        for (index, table) in tables.enumerated() {
            lines += ["", "    private static let table\(index) = \(SwiftLiteral.expression(table, indent: "    "))"]
        }
        return (lines + ["}", ""]).joined(separator: "\n")
    }
}
