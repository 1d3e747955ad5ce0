import EdgePlanCore
import Foundation
import Testing

@testable import EdgePlanDaemon

/// The recalibrated-profile history survives crashes: leftovers are cleaned, a broken `current` falls back.
struct ProfileVersionStoreTests {
    func temporaryDirectory() -> String {
        let path = "\(NSTemporaryDirectory())ep-versions-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func recalibrated(_ factor: Double) throws -> ProfileSet {
        let profile = try ProfileStore.load(nil)
        var variant = try profile.variant(model: "DSR1-Qwen-1.5B", quantization: .fp16)
        variant.decodeLatency.nSPerToken *= factor
        return profile.replacing(variant)
    }

    @Test func aBrokenCurrentFallsBackToTheNewestCompleteVersion() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try ProfileVersionStore(directory: directory)
        let older = try recalibrated(1.1)
        let newer = try recalibrated(1.2)
        try store.write(older, base: "base")
        try store.write(newer, base: "base")
        // A crash (or a hand) damages the current version: its model files are gone.
        try FileManager.default.removeItem(atPath: "\(directory)/versions/\(newer.version)/models")
        let restored = try #require(try store.current(base: "base"))
        #expect(restored.version == older.version)
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/current")
                == "versions/\(older.version)"
        )
        // A different configured profile never gets a recalibration of another.
        #expect(try store.current(base: "other") == nil)
    }

    @Test func leftoversOfACrashAreRemovedAtStart() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try ProfileVersionStore(directory: directory)
        for leftover in ["versions/.tmp-abc-123/models", "versions/.trash-def-456/accuracy"] {
            try FileManager.default.createDirectory(
                atPath: "\(directory)/\(leftover)",
                withIntermediateDirectories: true
            )
        }
        symlink("versions/nowhere", "\(directory)/.current-789")
        _ = try ProfileVersionStore(directory: directory)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/versions").isEmpty)
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: directory)).contains(".current-789"))
    }

    @Test func pruningKeepsOnlyCompleteVersions() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try ProfileVersionStore(directory: directory, keep: 3)
        for step in 1...6 { try store.write(try recalibrated(1 + Double(step) / 100), base: "base") }
        let names = store.versions()
        #expect(names.count == 3)
        for name in names {
            #expect(FileManager.default.fileExists(atPath: "\(directory)/versions/\(name)/base-version"))
        }
        #expect(try store.current(base: "base") != nil)
    }
}
