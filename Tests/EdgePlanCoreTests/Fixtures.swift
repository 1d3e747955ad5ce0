import EdgePlanCore
import Foundation

enum Fixtures {
    static let profile: ProfileSet = try! ProfileDecoder.decode(BundledResources.profileFiles)
    static let policy: Policy = try! PolicyDecoder.decode(BundledResources.defaultPolicy, file: "default.yaml")
    static let planner: Planner = try! Planner(profile: profile, policy: policy)

    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    static func observations(_ relative: String) throws -> [Observation] {
        let path = "\(repositoryRoot)/data/\(relative)"
        return try MeasurementDecoder.decode(Array(FileManager.default.contents(atPath: path)!), file: path)
    }

    static func mutatedFiles(_ path: String, _ transform: (String) -> String) -> [ProfileDecoder.File] {
        BundledResources.profileFiles.map {
            $0.path == path ? ProfileDecoder.File(path: $0.path, text: transform($0.text)) : $0
        }
    }
}
