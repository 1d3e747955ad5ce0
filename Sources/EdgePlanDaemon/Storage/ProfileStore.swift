import EdgePlanCore
import Foundation

/// Reads profile directories and policy files from disk (the core only ever sees their text).
public enum ProfileStore {
    /// The files of a profile directory: `device.yaml`, `models/*.yaml`, `accuracy/*.yaml`.
    public static func files(in directory: String) throws -> [ProfileDecoder.File] {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw EdgePlanError(.io, "profile directory does not exist", file: directory)
        }
        guard isDirectory.boolValue else {
            throw EdgePlanError(
                .io,
                "is a file, not a profile directory: a profile is a directory with device.yaml, models/ and accuracy/",
                file: directory
            )
        }
        var files: [ProfileDecoder.File] = []
        for relative in ["device.yaml"] + (try yamlFiles(in: directory, sub: "models"))
            + (try yamlFiles(in: directory, sub: "accuracy"))
        {
            let path = "\(directory)/\(relative)"
            guard let data = manager.contents(atPath: path) else {
                if relative == "device.yaml" {
                    throw EdgePlanError.invalidFile("profile has no device.yaml", file: directory)
                }
                throw EdgePlanError(.io, "cannot read file", file: path)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw EdgePlanError.invalidFile("not UTF-8 text", file: path)
            }
            files.append(ProfileDecoder.File(path: relative, text: text))
        }
        return files
    }

    private static func yamlFiles(in directory: String, sub: String) throws -> [String] {
        let path = "\(directory)/\(sub)"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return [] }
        return names.filter { $0.hasSuffix(".yaml") && !$0.hasPrefix(".") }.sorted().map { "\(sub)/\($0)" }
    }

    /// Loads a profile directory, or the bundled profile when `directory` is nil.
    public static func load(_ directory: String?) throws -> ProfileSet {
        // The bundled profile comes decoded: a test keeps it equal to what its files decode to.
        guard let directory else { return BundledResources.decodedProfile }
        do {
            return try ProfileDecoder.decode(files(in: directory), directoryName: directory)
        } catch let error as EdgePlanError
            where error.file != nil && !(error.file!.hasPrefix("/")) && error.file != directory
        {
            throw EdgePlanError(
                error.code,
                error.message,
                file: "\(directory)/\(error.file!)",
                line: error.line,
                field: error.field
            )
        }
    }

    /// Reads and decodes a policy file, or the bundled default when `path` is nil.
    public static func loadPolicy(_ path: String?) throws -> Policy {
        guard let path else {
            return try PolicyDecoder.decode(BundledResources.defaultPolicy, file: "default.yaml (bundled)")
        }
        return try PolicyDecoder.decode(try FileText.text(path, what: "policy file"), file: path)
    }

    /// Loads policy and profile (the policy may name the profile directory) and builds a planner on them.
    public static func loadPlanner(policyPath: String?, profileDirectory: String?) throws -> Planner {
        let policy = try loadPolicy(policyPath)
        let profile = try load(profileDirectory ?? policy.profileDirectory)
        return try Planner(profile: profile, policy: policy)
    }
}
