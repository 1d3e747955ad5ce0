import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Show, check, scaffold or measure a device profile.",
        subcommands: [Show.self, Check.self, FitVotes.self, Collect.self, New.self, Design.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Summarize a profile (default: the bundled one)."
        )
        @Argument(help: "Profile directory.") var directory: String?
        @Flag(
            help: "Show the output-length fits: soft/hard pairs, family spreads, and each configuration's distribution."
        ) var lengths = false
        @Flag(help: "Show the vote model's fit to the published parallel-scaling results, with the error per point.")
        var votes = false
        @Option(help: "Task class whose lengths to list (default: every benchmark, and the policy's classes).")
        var task: String?
        @Option(help: "Policy whose task classes --lengths may list (default: the bundled one).") var policy: String?

        func run() async throws {
            try await reportingErrors {
                let profile = try ProfileStore.load(directory)
                // --lengths and --votes together print both.
                if lengths {
                    try printLengths(profile, policy: try ProfileStore.loadPolicy(policy), task: task)
                }
                if votes {
                    if lengths { print("") }
                    try printVoteFit(
                        VoteFitter.fit(
                            try VoteTargets.decode(BundledResources.voteTargets, file: "vote-targets.yaml (bundled)"),
                            profile: profile
                        )
                    )
                }
                if lengths || votes { return }
                let device = profile.device
                print("\(device.displayName) (\(device.name)), profile version \(profile.version)")
                print(
                    "  memory \(device.memoryGiB) GiB (\(device.usableMemoryGiB) usable), \(device.memoryBandwidthGBps) GB/s, \(device.peakFP16TFLOPS) FP16 TFLOPS, calibrated in \(device.calibratedPowerMode)"
                )
                print("  variants:")
                for variant in profile.variants.values.sorted(by: { $0.id < $1.id }) {
                    print(
                        "    " + variant.id.description.padded(29) + variant.family.rawValue.padded(13)
                            + variant.calibration.rawValue.padded(10)
                            + String(
                                format: "n=%.4f s/tok  prefill(512)=%.3f s  floor=%.4f s/tok",
                                variant.decodeLatency.nSPerToken,
                                variant.prefillLatency.seconds(input: 512),
                                Roofline.decodeFloorSPerToken(variant, device: device)
                            )
                    )
                }
                print(
                    "  tasks: "
                        + profile.tasks.map { "\($0) (\(profile.accuracy[$0]!.records.count) rows)" }.joined(
                            separator: ", "
                        )
                )
            }
        }
    }

    struct FitVotes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fit-votes",
            abstract: "Fit the majority-vote model to published parallel-scaling results and print the error per point."
        )
        @Argument(help: "Profile directory whose model files get the fitted parameters (with --write).") var directory:
            String
        @Option(help: "Vote targets file (default: the bundled data/paper/vote-targets.yaml).") var targets: String?
        @Flag(help: "Write the fitted parameters into the profile's model files.") var write = false

        func run() async throws {
            try await reportingErrors {
                let parsed =
                    try targets.map { try VoteTargets.decode(try readText($0), file: $0) }
                    ?? VoteTargets.decode(BundledResources.voteTargets, file: "vote-targets.yaml (bundled)")
                let profile = try ProfileStore.load(directory)
                let results = try VoteFitter.fit(parsed, profile: profile)
                printVoteFit(results)
                guard write else { return }
                let fitted = VoteFitter.apply(results, to: profile, source: parsed.source)
                for variant in fitted.variants.values.sorted(by: { $0.id < $1.id }) {
                    try AtomicFile.write(
                        ProfileEncoder.variant(variant),
                        to: "\(directory)/models/\(variant.id.fileStem).yaml"
                    )
                }
                print("wrote \(fitted.variants.count) model files under \(directory)/models")
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Validate every file: schema, units, ranges and physical bounds."
        )
        @Argument(help: "Profile directory (default: the bundled one).") var directory: String?

        func run() async throws {
            try await reportingErrors {
                let files = try directory.map { try ProfileStore.files(in: $0) } ?? BundledResources.profileFiles
                let problems = ProfileChecker.check(files)
                for problem in problems { print(problem) }
                let errors = problems.filter { $0.severity == .error }.count
                print("\(files.count) files, \(errors) errors, \(problems.count - errors) warnings")
                if errors > 0 { throw ExitStatus.dataError }
            }
        }
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check or show an operator policy.",
        subcommands: [Check.self, Show.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Print the effective policy (defaults filled in) of a file, or of a running daemon with --socket."
        )
        @Argument(help: "Policy file (default: the bundled one).") var file: String?
        @Option(help: "Ask a running daemon for its policy instead.") var socket: String?

        func run() async throws {
            try await reportingErrors {
                if let socket {
                    printJSON(
                        try VarlinkClient.call(socketPath: socket, "io.edgeplan.Planner.GetPolicy")["policy"] ?? .null
                    )
                } else {
                    printJSON(try ProfileStore.loadPolicy(file).json)
                }
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Parse a policy and check it against its profile."
        )
        @Argument(help: "Policy file.") var file: String
        @Option(help: "Profile directory (default: the policy's, else the bundled one).") var profile: String?

        func run() async throws {
            try await reportingErrors {
                let planner = try ProfileStore.loadPlanner(policyPath: file, profileDirectory: profile)
                print(
                    "\(file): ok (version \(planner.policy.version), \(planner.policy.tasks.count) task sections, profile \(planner.profile.device.name))"
                )
            }
        }
    }
}

/// The vote fit, one line per published point: single-sample accuracy, cap chance, lift wanted and fitted, error.
func printVoteFit(_ results: [VoteFitter.Result]) {
    for result in results {
        let anchors = result.anchors.map {
            "\(Int($0.budgetTokens)) tokens: concentration \($0.concentration.significantDigits(3)), unanswered at cap \($0.unansweredAtCap.significantDigits(3))"
        }
        print(
            "\(result.family.rawValue): \(anchors.joined(separator: "; ")); RMS error \(format(result.rmsePoints, 2)) points"
        )
        print(
            "  " + "model".padded(16) + "budget".padded(8) + "k/ref".padded(8) + "single".padded(9) + "P(cap)".padded(8)
                + "lift wanted".padded(13) + "fitted".padded(9) + "accuracy wanted/fitted".padded(24) + "error"
        )
        for row in result.rows {
            let t = row.target
            print(
                "  " + t.model.padded(16) + "\(t.budgetTokens)".padded(8) + "\(t.samples)/\(t.relativeTo)".padded(8)
                    + "\(format(row.singleAccuracy * 100, 1)) %".padded(9) + format(row.capProbability, 2).padded(8)
                    + format(t.lift, 2).padded(13) + format(row.predictedLift, 2).padded(9)
                    + "\(format(row.targetAccuracy * 100, 1)) / \(format(row.fittedAccuracy * 100, 1)) %".padded(24)
                    + "\(format(row.errorPoints, 2)) points"
            )
        }
    }
}

/// Output-length fits: the soft/hard pairs, each family's spread, and per configuration mean, p50, p95 and P(cap).
func printLengths(_ profile: ProfileSet, policy: Policy = Policy(), task: String? = nil) throws {
    let planner = try Planner(profile: profile, policy: policy)
    // The class is checked before anything is printed: an error never follows half a listing.
    let classes = task.map { [$0] } ?? planner.taskClasses
    if let task, planner.space(task) == nil {
        throw EdgePlanError(
            .unknownTask,
            "unknown task class '\(task)'; known: \(planner.taskClasses.joined(separator: ", ")) (a class of your own policy needs --policy)",
            field: "task"
        )
    }
    let fits = OutputLengthFits(profile: profile)
    print("soft/hard pairs (the cap censors the soft distribution): log-normal spread that matches both means")
    print(
        "  " + "task".padded(16) + "variant".padded(24) + "budget".padded(8) + "soft mean".padded(11)
            + "hard mean".padded(11) + "sigma".padded(8) + "CV".padded(7) + "P(cap)"
    )
    for pair in fits.pairs {
        print(
            "  " + pair.task.padded(16) + pair.variant.description.padded(24) + "\(pair.budgetTokens)".padded(8)
                + format(pair.softMeanTokens, 1).padded(11)
                + format(pair.hardMeanTokens, 1).padded(11) + format(pair.sigma, 3).padded(8)
                + format(pair.coefficientOfVariation, 2).padded(7) + format(pair.capProbability, 3)
        )
    }
    print(
        "family spreads (median sigma of the pairs): "
            + fits.familySigma.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                "\($0.key.rawValue) \(format($0.value, 3)) (CV \(format((exp($0.value * $0.value) - 1).squareRoot(), 2)))"
            }.joined(separator: ", ")
    )
    for name in classes {
        guard let space = planner.space(name) else { continue }
        let rows = space.candidates.filter { $0.configuration.parallel == 1 }.map { candidate in
            ("\(candidate.group)\(candidate.configuration.budgetTokens.map { " \($0)" } ?? "")", candidate.outputLength)
        }
        // The name column fits the longest name with two spaces to spare: columns never run together.
        let width = max(40, (rows.map(\.0.count).max() ?? 0) + 2)
        print("\n\(name): per configuration (one sample)")
        print(
            "  " + "configuration".padded(width) + "source".padded(9) + "mean".padded(9) + "p50".padded(9)
                + "p95".padded(9) + "P(cap)"
        )
        for (name, length) in rows {
            print(
                "  " + name.padded(width) + length.source.rawValue.padded(9) + format(length.meanTokens, 0).padded(9)
                    + format(length.quantile(0.5), 0).padded(9)
                    + format(length.quantile(0.95), 0).padded(9) + format(length.capProbability, 3)
            )
        }
    }
}
