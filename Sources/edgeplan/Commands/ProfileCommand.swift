import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "profile", abstract: "Show or check a device profile.", subcommands: [Show.self, Check.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Summarize a profile (default: the bundled one).")
        @Argument(help: "Profile directory.") var directory: String?

        func run() async throws {
            try await reportingErrors {
                let profile = try ProfileStore.load(directory)
                let device = profile.device
                print("\(device.displayName) (\(device.name)), profile version \(profile.version)")
                print("  memory \(device.memoryGiB) GiB (\(device.usableMemoryGiB) usable), \(device.memoryBandwidthGBps) GB/s, \(device.peakFP16TFLOPS) FP16 TFLOPS, calibrated in \(device.calibratedPowerMode)")
                print("  variants:")
                for variant in profile.variants.values.sorted(by: { $0.id < $1.id }) {
                    print("    " + variant.id.description.padded(29) + variant.family.rawValue.padded(13) + variant.calibration.rawValue.padded(10) + String(format: "n=%.4f s/tok  prefill(512)=%.3f s  floor=%.4f s/tok", variant.decodeLatency.nSPerToken, variant.prefillLatency.seconds(input: 512), Roofline.decodeFloorSPerToken(variant, device: device)))
                }
                print("  tasks: " + profile.tasks.map { "\($0) (\(profile.accuracy[$0]!.records.count) rows)" }.joined(separator: ", "))
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate every file: schema, units, ranges and physical bounds.")
        @Argument(help: "Profile directory (default: the bundled one).") var directory: String?

        func run() async throws {
            try await reportingErrors {
                let files = try directory.map { try ProfileStore.files(in: $0) } ?? BundledResources.profileFiles
                let problems = ProfileChecker.check(files)
                for problem in problems { print(problem) }
                let errors = problems.filter { $0.severity == .error }.count
                print("\(files.count) files, \(errors) errors, \(problems.count - errors) warnings")
                if errors > 0 { throw ExitCode(1) }
            }
        }
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "policy", abstract: "Check an operator policy.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse a policy and check it against its profile.")
        @Argument(help: "Policy file.") var file: String
        @Option(help: "Profile directory (default: the policy's, else the bundled one).") var profile: String?

        func run() async throws {
            try await reportingErrors {
                let planner = try ProfileStore.loadPlanner(policyPath: file, profileDirectory: profile)
                print("\(file): ok (version \(planner.policy.version), \(planner.policy.tasks.count) task sections, profile \(planner.profile.device.name))")
            }
        }
    }
}
