import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

/// Where the profile and policy come from.
struct SnapshotOptions: ParsableArguments {
    @Option(help: "Profile directory (default: the policy's, else the bundled Jetson AGX Orin 64GB profile).")
    var profile: String?

    @Option(help: "Policy file (default: the bundled policies/default.yaml).")
    var policy: String?

    func planner() throws -> Planner {
        try ProfileStore.loadPlanner(policyPath: policy, profileDirectory: profile)
    }

    func profileSet() throws -> ProfileSet {
        if let profile { return try ProfileStore.load(profile) }
        if let policy { return try ProfileStore.load(ProfileStore.loadPolicy(policy).profileDirectory) }
        return try ProfileStore.load(nil)
    }
}

/// Exit codes, the same for every command: 0 done, 2 no feasible plan, 64 bad usage (flags), 65 bad data
/// (a profile, policy, workload or request that does not check), 74 a file or socket that cannot be read or written.
enum ExitStatus {
    static let infeasible = ExitCode(2)
    static let dataError = ExitCode(65)
    static let ioError = ExitCode(74)
    /// Done in part: what was done is kept, and running the command again does the rest (sysexits' EX_TEMPFAIL).
    static let tryAgain = ExitCode(75)
}

/// Runs a command body, printing EdgePlan errors plainly and exiting with their documented code instead of crashing.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as EdgePlanError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        switch error.code {
        case .io: throw ExitStatus.ioError
        case .infeasible: throw ExitStatus.infeasible
        case .invalidInput, .invalidFile, .unknownTask, .unknownModel, .unknownMode: throw ExitStatus.dataError
        }
    }
}

/// Version of the CLI's JSON shapes; it changes when a field is renamed or removed (added fields do not change it).
let jsonSchemaVersion = 1

/// Prints JSON; an object carries `schemaVersion` first, so scripts can tell the shape they get.
func printJSON(_ value: JSONValue) {
    print(versioned(value).serialized(pretty: true))
}

/// The value with `schemaVersion` first, if it is an object that lacks one.
func versioned(_ value: JSONValue) -> JSONValue {
    guard case let .object(pairs) = value, !pairs.contains(where: { $0.0 == "schemaVersion" }) else { return value }
    return .object([("schemaVersion", .int(jsonSchemaVersion))] + pairs)
}

func parseQuantization(_ raw: String) throws -> Quantization {
    guard let value = Quantization(rawValue: raw.lowercased()) else {
        throw ValidationError(Quantization.rule(raw))
    }
    return value
}

func parseSeconds(_ raw: String, _ name: String) throws -> Double {
    do { return try QuantityParser.seconds(raw, field: name) } catch let error as EdgePlanError {
        throw ValidationError("--\(name): \(error.message)")
    }
}

func parseJoules(_ raw: String, _ name: String) throws -> Double {
    do { return try QuantityParser.joules(raw, field: name) } catch let error as EdgePlanError {
        throw ValidationError("--\(name): \(error.message)")
    }
}

func format(_ value: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", value) }

/// "1 report", "4 reports".
func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }
