import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate a workload of robot tasks against a ground truth and compare policies.",
        discussion: """
            Each policy plans, recalibrates and learns with the daemon's own code; outcomes come from the truth
            (--truth, default: the bundled workloads/truth-default.yaml) on a device that runs one request at a
            time, or, with --overlap, on engines that run tasks as they arrive, side by side (each model's engine
            follows its concurrency curve; a run still going at its deadline is cut there). Baselines: static (no
            recalibration, no learning), mean-latency (plans on mean latency, as the paper does), no-learning,
            ledger-on and ledger-off (the policy planning against the runs it admitted, or as if the engine were
            idle), fixed:MODEL/QUANT/MODE[/BUDGET]xK.
            """
    )

    @Option(help: "Workload: JSON lines (.jsonl, streamed) or YAML (kind: workload).") var workload: String
    @Option(help: "Ground truth file (kind: truth).") var truth: String?
    @Option(
        name: .customLong("policy"),
        help: "Policy file to simulate (repeatable); the first also defines the task classes."
    ) var policies: [String] = []
    @Option(
        name: .customLong("baseline"),
        help: "Built-in baseline on the first policy (repeatable; default: static and mean-latency; 'none' for none)."
    ) var baselines: [String] = []
    @Option(help: "Random seed: the same seed, workload and truth give the same result.") var seed: UInt64 = 7
    @Option(
        name: .customLong("apply-every"),
        help: "Apply learned outcomes to the planner every N reports (the daemon: every report)."
    ) var applyEvery = 20
    @Option(help: "Time window for the plots over time, with a unit.") var window = "1h"
    @Option(help: "Profile directory (default: the first policy's, else the bundled one).") var profile: String?
    @Option(help: "Write SVG plots into this directory.") var plot: String?
    @Option(
        help:
            "Who reports the runs back: honest, or optimistic-liar (half the output in 40 % of the time, always right)."
    ) var reporter = "honest"
    @Flag(help: "Tasks start as they arrive and share the engine, instead of queueing for it one at a time.")
    var overlap = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        _ = try parseSeconds(window, "window")
        if Simulator.Reporter(rawValue: reporter) == nil {
            throw ValidationError(
                "--reporter: unknown reporter '\(reporter)'; use \(Simulator.Reporter.allCases.map(\.rawValue).joined(separator: " or "))"
            )
        }
        if applyEvery < 1 { throw ValidationError("--apply-every must be at least 1") }
    }

    func run() async throws {
        try await reportingErrors {
            let truthText: String
            let truthName: String
            if let truth {
                (truthText, truthName) = (try readText(truth), truth)
            } else {
                (truthText, truthName) = (BundledResources.defaultTruth, "truth-default.yaml (bundled)")
            }
            let world = try Truth.decode(truthText, file: truthName)
            var specs: [SimulatedPolicy] = []
            var names: [String: Int] = [:]
            for path in policies.isEmpty ? [nil] : policies.map(Optional.some) {
                let policy = try ProfileStore.loadPolicy(path)
                var name = path.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent } ?? "default"
                names[name, default: 0] += 1
                if names[name]! > 1 { name += "-\(names[name]!)" }
                specs.append(
                    SimulatedPolicy(name: name, policy: policy, kind: .planner(recalibrate: true, learn: true))
                )
            }
            for baseline in baselines.isEmpty ? ["static", "mean-latency"] : baselines where baseline != "none" {
                specs.append(try SimulatedPolicy.baseline(baseline, on: specs[0].policy))
            }
            let profileSet = try ProfileStore.load(profile ?? specs[0].policy.profileDirectory)
            var simulator = try Simulator(
                profile: profileSet,
                truth: world,
                policies: specs,
                options: .init(
                    seed: seed,
                    applyEvery: applyEvery,
                    windowS: try parseSeconds(window, "window"),
                    reporter: Simulator.Reporter(rawValue: reporter)!,
                    overlap: overlap
                )
            )
            try WorkloadFile.read(workload) { task in try simulator.process(task) }
            try simulator.finish()
            if json {
                printJSON(SimulationReport.json(simulator, workload: workload, truth: truthName))
            } else {
                print(SimulationReport.table(simulator), terminator: "")
            }
            if let plot {
                try FileManager.default.createDirectory(atPath: plot, withIntermediateDirectories: true)
                let directory = URL(fileURLWithPath: plot, isDirectory: true)
                for (name, svg) in try SimulationPlots.all(simulator) {
                    try AtomicFile.write(svg, to: directory.appendingPathComponent(name).path)
                }
                if !json { print("plots written to \(directory.standardizedFileURL.path)/") }
            }
        }
    }
}

/// Streams a workload file: JSON lines one line at a time (memory stays flat), YAML whole. Errors name the line.
enum WorkloadFile {
    /// Reads every task of a workload; a directory, an unreadable file or one without a task is an error naming it.
    static func read(_ path: String, _ body: (WorkloadTask) throws -> Void) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw EdgePlanError(.io, "is a directory; give a workload file (.jsonl or .yaml)", file: path)
        }
        var tasks = 0
        let count: (WorkloadTask) throws -> Void = { task in
            tasks += 1
            try body(task)
        }
        try readTasks(path, count)
        guard tasks > 0 else {
            throw EdgePlanError(.invalidFile, "has no tasks: nothing to simulate", file: path)
        }
    }

    private static func readTasks(_ path: String, _ body: (WorkloadTask) throws -> Void) throws {
        if path.hasSuffix(".yaml") || path.hasSuffix(".yml") {
            for task in try WorkloadDecoder.decodeYAML(try readText(path), file: path) { try body(task) }
            return
        }
        guard let file = fopen(path, "r") else {
            throw EdgePlanError(.io, "cannot read workload: \(String(cString: strerror(errno)))", file: path)
        }
        defer { fclose(file) }
        var size = 0
        if fseek(file, 0, SEEK_END) == 0 {
            size = ftell(file)
            rewind(file)
        }
        var progress = ProgressBar(total: max(size, 1))
        var buffer: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(buffer) }
        var number = 0
        var lastArrival = -Double.infinity
        while true {
            let length = getline(&buffer, &capacity, file)
            if length < 0 { break }
            number += 1
            let line = String(cString: buffer!)
            guard let task = try WorkloadDecoder.decodeLine(line, file: path, lineNumber: number) else { continue }
            if task.arrivalS < lastArrival {
                throw EdgePlanError(
                    .invalidInput,
                    "arrival times must not go backwards (\(task.arrivalS) s after \(lastArrival) s)",
                    file: path,
                    line: number,
                    field: "at"
                )
            }
            lastArrival = task.arrivalS
            do { try body(task) } catch let error as EdgePlanError where error.line == nil {
                throw EdgePlanError(error.code, error.message, file: path, line: number, field: error.field)
            }
            if number % 4096 == 0 { progress.advance("simulating", by: ftell(file) - progress.done) }
        }
        if progress.done < progress.total { progress.advance("done", by: progress.total - progress.done) }
    }
}

func readText(_ path: String) throws -> String { try FileText.text(path) }

struct WorkloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workload",
        abstract: "Generate workloads of robot tasks.",
        subcommands: [Generate.self]
    )

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Poisson arrivals from a mix of task classes, as JSON lines."
        )
        @Option(help: "Mix file (kind: workload-mix).") var mix: String
        @Option(parsing: .unconditional, help: "Arrival rate with a unit: 2/min, 30/h, 0.5/s.") var rate: String
        @Option(parsing: .unconditional, help: "How long, with a unit: 24h, 90m.") var duration: String
        @Option(help: "Random seed.") var seed: UInt64 = 7
        @Option(name: .shortAndLong, help: "Write to this file (default: standard output).") var output: String?

        /// Flags are checked while parsing, so that an error shows this command's usage.
        func validate() throws {
            _ = try Self.rate(rate)
            _ = try Self.seconds(duration)
        }

        static func seconds(_ duration: String) throws -> Double {
            do { return try QuantityParser.seconds(duration, field: "duration", requireUnit: true) } catch let
                error as EdgePlanError
            {
                throw ValidationError("--duration: \(error.message)")
            }
        }

        func run() async throws {
            try await reportingErrors {
                let parsedMix = try WorkloadMix.decode(try readText(mix), file: mix)
                let perSecond = try Self.rate(rate)
                let seconds = try Self.seconds(duration)
                // Streamed in chunks, so a long workload never sits in memory; a file is written beside its final
                // name and renamed into place when complete.
                let temporary = output.map { "\($0).tmp-\(getpid())" }
                if let temporary { _ = FileManager.default.createFile(atPath: temporary, contents: nil) }
                guard let handle = temporary.map({ FileHandle(forWritingAtPath: $0) }) ?? FileHandle.standardOutput
                else {
                    throw EdgePlanError(.io, "cannot write workload", file: output)
                }
                var chunk = ""
                var count = 0
                parsedMix.generate(ratePerS: perSecond, durationS: seconds, seed: seed) { task in
                    chunk += task.jsonLine + "\n"
                    count += 1
                    if chunk.utf8.count > 1 << 16 {
                        handle.write(Data(chunk.utf8))
                        chunk = ""
                    }
                }
                handle.write(Data(chunk.utf8))
                if let output, let temporary {
                    try handle.synchronize()
                    try handle.close()
                    guard rename(temporary, output) == 0 else {
                        throw EdgePlanError(.io, "cannot move the workload into place", file: output)
                    }
                    FileHandle.standardError.write(Data("wrote \(count) tasks to \(output)\n".utf8))
                }
            }
        }

        static func rate(_ text: String) throws -> Double {
            let parts = text.split(separator: "/")
            guard parts.count == 2, let count = Double(parts[0]), count > 0, count.isFinite else {
                throw ValidationError("--rate: '\(text)' is not a rate; use e.g. 2/min, 30/h or 0.5/s")
            }
            let per: Double
            switch parts[1].lowercased() {
            case "s": per = 1
            case "min", "m": per = 60
            case "h": per = 3600
            case "d": per = 86_400
            default: throw ValidationError("--rate: unknown unit '\(parts[1])'; use /s, /min, /h or /d")
            }
            return count / per
        }
    }
}
