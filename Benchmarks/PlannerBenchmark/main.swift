// Planner and daemon benchmarks: prints medians and percentiles over repeated runs.
import EdgePlanCore
import EdgePlanDaemon
import Foundation
import Logging

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

let planner = try ProfileStore.loadPlanner(policyPath: nil, profileDirectory: nil)
let tasks = planner.profile.tasks

// Cold front construction: a fresh planner each round so no cache helps.
// Spaces are built once per profile (the daemon builds them all at load); a swap keeps them.
for task in tasks { _ = planner.space(task) }
var cold: [Double] = []
var coldByTask: [String: [Double]] = [:]
for round in 0..<1000 {
    // A new planner on the same snapshot (as a recalibration or learned update makes): its fronts are all cold.
    let fresh = planner.applying(planner.overlay)
    let task = tasks[round % tasks.count]
    let start = now()
    _ = try fresh.front(task: task, inputTokens: 512)
    cold.append(now() - start)
    coldByTask[task, default: []].append(now() - start)
}
cold.sort()
print(
    String(
        format: "cold front construction: median %.3f ms, p99 %.3f ms (%d rounds); ",
        percentile(cold, 0.5) * 1e3,
        percentile(cold, 0.99) * 1e3,
        cold.count
    )
        + "median per class: "
        + coldByTask.sorted { $0.key < $1.key }.map {
            "\($0.key) \(String(format: "%.3f", percentile($0.value.sorted(), 0.5) * 1e3)) ms"
        }.joined(separator: ", ")
)
if ProcessInfo.processInfo.environment["EDGEPLAN_BENCH_ONLY"] == "cold" { exit(0) }

// Warm decisions: varied deadlines, budgets and inputs on cached fronts.
let requests = (0..<1000).map { i in
    PlanRequest(
        task: "mmlu-redux",
        deadlineS: [0.8, 2, 5, 10, 30, 120, 300][i % 7],
        energyBudgetJ: i % 3 == 0 ? 500 : nil,
        inputTokens: 100 + (i % 4) * 128
    )
}
for request in requests { _ = try planner.plan(request) }
var warm: [Double] = []
var medians: [Double] = []
for _ in 0..<5 {
    var round: [Double] = []
    for request in requests {
        let start = now()
        _ = try planner.plan(request)
        round.append(now() - start)
    }
    round.sort()
    medians.append(percentile(round, 0.5))
    warm += round
}
warm.sort()
let total = warm.reduce(0, +)
print(
    String(
        format: "warm plan decisions: p50 %.2f µs, p99 %.2f µs, %.0f decisions/s (%d decisions, 5 rounds)",
        percentile(warm, 0.5) * 1e6,
        percentile(warm, 0.99) * 1e6,
        Double(warm.count) / total,
        warm.count
    )
)

// The same decisions against an engine with 64 admitted runs (the ledger on): each request is played forward beside
// them, alternating rounds with the idle decisions above so that both see the same machine.
do {
    let models = ["DSR1-Qwen-1.5B", "DSR1-Llama-8B", "DSR1-Qwen-14B"]
    let load = EngineLoad(
        runs: (0..<64).map { i in
            EngineLoad.Run(
                requestID: "r\(i)",
                taskClass: "mmlu-redux",
                model: models[i % models.count],
                priority: 0,
                sequences: 1 + i % 4,
                prefillLeftS: i % 8 == 0 ? 0.2 : 0,
                tokensLeft: Double(100 + (i * 37) % 2000),
                stepS: 0.02,
                decodePowerW: 15,
                deadlineLeftS: 10_000,
                predictedEndS: 60
            )
        }
    )
    var idle: [Double] = []
    var busy: [Double] = []
    for _ in 0..<5 {
        for request in requests {
            let start = now()
            _ = try planner.plan(request)
            idle.append(now() - start)
            let startBusy = now()
            _ = try planner.plan(request, load: load, priority: 0)
            busy.append(now() - startBusy)
        }
    }
    idle.sort()
    busy.sort()
    print(
        String(
            format:
                "plan decisions with 64 runs in the ledger: p50 %.2f µs, p99 %.2f µs against idle p50 %.2f µs, p99 %.2f µs (%.2f× the p50; %d decisions each, 5 interleaved rounds)",
            percentile(busy, 0.5) * 1e6,
            percentile(busy, 0.99) * 1e6,
            percentile(idle, 0.5) * 1e6,
            percentile(idle, 0.99) * 1e6,
            percentile(busy, 0.5) / percentile(idle, 0.5),
            busy.count
        )
    )
}

// One `Plan` call in process, taken apart: what the event loop does between reading a frame and writing its reply.
do {
    let service = try PlannerService(logger: Logger(label: "benchmark", factory: { _ in SwiftLogNoOpLogHandler() })) {
        planner
    }
    let dispatcher = VarlinkDispatcher(service: service)
    let frame = Array(
        #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":8000,"inputTokens":256}}"#
            .utf8
    )
    guard case let .plan(sample) = try planner.plan(PlanRequest(task: "mmlu-redux", deadlineS: 8, inputTokens: 256))
    else { fatalError("no plan") }
    func medianMicroseconds(_ body: () -> Void) -> Double {
        var times: [Double] = []
        for _ in 0..<5 {
            let start = now()
            for _ in 0..<2000 { body() }
            times.append((now() - start) / 2000)
        }
        return times.sorted()[2] * 1e6
    }
    let parse = medianMicroseconds { _ = try? JSONValue.parse(frame) }
    let plan = medianMicroseconds {
        _ = try? service.plan(PlanRequest(task: "mmlu-redux", deadlineS: 5, inputTokens: 256))
    }
    let respond = medianMicroseconds { _ = dispatcher.respond(frame) }
    let written = medianMicroseconds { _ = VarlinkDispatcher.reply(sample) }
    let sampleTree = JSONValue.object([("parameters", .object([("plan", sample.json)]))])
    let tree = medianMicroseconds { _ = sampleTree.utf8() }
    print(
        String(
            format:
                "one Plan call in process (median of 5 × 2,000): parse %.2f µs, service plan %.2f µs, whole call (parse, schema check, plan, reply) %.2f µs; "
                + "the reply (%d bytes) written directly %.2f µs, encoded from a tree built beforehand %.2f µs",
            parse,
            plan,
            respond,
            VarlinkDispatcher.reply(sample).count,
            written,
            tree
        )
    )
}

// The same decisions with learned posteriors in play: 400 outcomes over the configurations the planner picks.
var learner = Learner()
var learnedPlanner = planner
for (index, request) in requests.prefix(400).enumerated() {
    guard case let .plan(plan) = try learnedPlanner.plan(request) else { continue }
    learner.learn(
        LearningOutcome(
            taskClass: plan.task,
            configuration: plan.configuration,
            correct: index % 3 != 0,
            sampleOutputTokens: [Int(plan.meanOutputTokens)],
            peer: 0
        ),
        planner: planner
    )
    learnedPlanner = planner.applying(learner.overlay)
}
for request in requests { _ = try learnedPlanner.plan(request) }
var learnedWarm: [Double] = []
for _ in 0..<5 {
    for request in requests {
        let start = now()
        _ = try learnedPlanner.plan(request)
        learnedWarm.append(now() - start)
    }
}
learnedWarm.sort()
print(
    String(
        format: "warm plan decisions, learned posteriors in play (%d configurations learned): p50 %.2f µs, p99 %.2f µs",
        learner.overlay.accuracy.count,
        percentile(learnedWarm, 0.5) * 1e6,
        percentile(learnedWarm, 0.99) * 1e6
    )
)

// Simulation throughput: a generated home-robot workload streamed into `edgeplan simulate`'s core, the
// percentile policy recalibrating and learning (run from the repository root, where workloads/ is).
if let mixText = try? String(contentsOfFile: "workloads/home-robot-mix.yaml", encoding: .utf8),
    let policyText = try? String(contentsOfFile: "workloads/home-robot-policy.yaml", encoding: .utf8)
{
    let count = Int(ProcessInfo.processInfo.environment["EDGEPLAN_SIM_REQUESTS"] ?? "") ?? 1_000_000
    let mix = try WorkloadMix.decode(mixText, file: "home-robot-mix.yaml")
    let policy = try PolicyDecoder.decode(policyText, file: "home-robot-policy.yaml")
    let truth = try Truth.decode(BundledResources.defaultTruth, file: "truth")
    // Each kind adds one part of the feedback, so the differences show where a simulated request's time goes.
    let kinds: [(String, SimulatedPolicy.Kind)] = [
        (
            "fixed configuration (oracle and truth only)",
            .fixed(
                Configuration(
                    variant: VariantID(model: "DSR1-Qwen-1.5B", quantization: .fp16),
                    mode: .hard,
                    budgetTokens: 128,
                    capped: true,
                    parallel: 1
                )
            )
        ),
        ("static planner", .planner(recalibrate: false, learn: false)),
        ("planner recalibrating", .planner(recalibrate: true, learn: false)),
        ("planner recalibrating and learning", .planner(recalibrate: true, learn: true)),
    ]
    let only = ProcessInfo.processInfo.environment["EDGEPLAN_SIM_KIND"].flatMap(Int.init)
    for (index, (label, kind)) in kinds.enumerated() where only == nil || only == index {
        var simulator = try Simulator(
            profile: planner.profile,
            truth: truth,
            policies: [SimulatedPolicy(name: "percentile", policy: policy, kind: kind)],
            options: .init(seed: 7, windowS: 3600)
        )
        let start = now()
        var generated = 0
        // 40 tasks an hour keeps the device busy about an eighth of the time, as in the shipped day.
        try mix.generate(ratePerS: 40.0 / 3600, durationS: Double(count) / (40.0 / 3600) * 1.2, seed: 7) { task in
            guard generated < count else { return }
            generated += 1
            try simulator.process(task)
        }
        let elapsed = now() - start
        print(
            "simulation, \(label): "
                + String(
                    format:
                        "%d requests in %.2f s (%.0f requests/s, %.1f µs each), %d recalibrations, %d learned updates",
                    generated,
                    elapsed,
                    Double(generated) / elapsed,
                    elapsed / Double(generated) * 1e6,
                    simulator.runs[0].recalibrations,
                    simulator.runs[0].learnedUpdates
                )
        )
    }
} else {
    print("simulation: skipped (run from the repository root to find workloads/)")
}
// Whole CLI processes: start-up, profile and policy decoding, one class's space, the answer. EDGEPLAN_CLI names
// another binary (the installed, statically linked one, say).
let cli =
    ProcessInfo.processInfo.environment["EDGEPLAN_CLI"]
    ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edgeplan")
    .path
if FileManager.default.isExecutableFile(atPath: cli) {
    for arguments in [
        ["--version"], ["frontier", "--task", "mmlu-redux"], ["plan", "--task", "mmlu-redux", "--deadline", "5s"],
    ] {
        var times: [Double] = []
        for _ in 0..<15 {
            // posix_spawn and waitpid: Foundation's Process polls for the child's exit in steps of about 50 ms.
            let argv = ([cli] + arguments).map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            var pid: pid_t = 0
            let start = now()
            guard posix_spawn(&pid, cli, &actions, nil, argv, environ) == 0 else { break }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            times.append(now() - start)
        }
        guard !times.isEmpty else { continue }
        times.sort()
        print(
            "process `edgeplan \(arguments.joined(separator: " "))`: "
                + String(
                    format: "median %.1f ms [%.1f–%.1f]",
                    percentile(times, 0.5) * 1e3,
                    times[0] * 1e3,
                    times[times.count - 1] * 1e3
                ) + " (15 runs of \(cli))"
        )
    }
}

if ProcessInfo.processInfo.environment["EDGEPLAN_BENCH_ONLY"] == "simulation" { exit(0) }

// Over the socket, against the kernel's floor: a C echo server with Varlink's framing and one C client timing loop
// (Benchmarks/Floor), built here with `cc` and run in alternating rounds against the echo server and the real
// daemon (`edgeplan serve`, built beside this benchmark). Ratios to the floor measured in the same run are what
// carries over between machines.
func run(_ path: String, _ arguments: [String], output: Bool = false) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw EdgePlanError.invalidInput(
            "\(path) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)"
        )
    }
    return String(decoding: data, as: UTF8.self)
}
func start(_ path: String, _ arguments: [String], socket: String, environment: [String: String] = [:]) throws -> Process
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardError = FileHandle.nullDevice
    try process.run()
    while !FileManager.default.fileExists(atPath: socket) { usleep(10_000) }
    return process
}
/// Resident memory, its peak and its anonymous and file-backed parts, as /proc/PID/status gives them.
func memory(_ pid: Int32) -> String {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> String {
        status.split(separator: "\n").first { $0.hasPrefix(name) }.map { $0.split(separator: ":")[1].trimmed } ?? "?"
    }
    return "\(field("VmRSS")) (peak \(field("VmHWM")); anonymous \(field("RssAnon")), file-backed \(field("RssFile")))"
}
let daemonBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
    "edgeplan"
).path
let floorSources = "Benchmarks/Floor"
if FileManager.default.isExecutableFile(atPath: daemonBinary),
    FileManager.default.fileExists(atPath: "\(floorSources)/floor_client.c")
{
    let work = NSTemporaryDirectory() + "edgeplan-floor-\(getpid())"
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    // The system's C compiler, or the clang that comes with the Swift toolchain.
    let compiler = FileManager.default.isExecutableFile(atPath: "/usr/bin/cc") ? "cc" : "clang"
    for name in ["echo_server", "floor_client"] {
        _ = try run(
            "/usr/bin/env",
            [compiler, "-O2", "-pthread", "-o", "\(work)/\(name)", "\(floorSources)/\(name).c"]
        )
    }
    let echoSocket = "\(work)/echo.sock"
    let daemonSocket = "\(work)/daemon.sock"
    let echo = try start("\(work)/echo_server", [echoSocket], socket: echoSocket)
    // With the unit's allocator setting (Environment=MALLOC_ARENA_MAX=2 in systemd/edgeplan.service).
    let daemon = try start(
        daemonBinary,
        ["serve", "--socket", daemonSocket, "--threads", "2"],
        socket: daemonSocket,
        environment: ["MALLOC_ARENA_MAX": "2"]
    )
    print("daemon: \(daemonBinary) serve (pid \(daemon.processIdentifier)); floor: \(work)/echo_server")
    let plan =
        #"{"method":"io.edgeplan.Planner.Plan","parameters":{"task":"mmlu-redux","deadlineMs":5000,"inputTokens":256}}"#
    // GetInfo plans nothing and answers 168 bytes: what the daemon's socket path costs before any planning.
    let getInfo = #"{"method":"org.varlink.service.GetInfo","parameters":{}}"#
    let echoMessage = String(repeating: "x", count: 120)
    struct Figures {
        var p50: [Double] = [], p99: [Double] = [], perSecond: [Double] = []
        mutating func append(_ round: Figures) {
            p50 += round.p50
            p99 += round.p99
            perSecond += round.perSecond
        }
    }
    let rounds = Int(ProcessInfo.processInfo.environment["EDGEPLAN_SOCKET_ROUNDS"] ?? "") ?? 5
    for clients in [1, 16, 64] {
        let calls = clients == 1 ? 5000 : 40_000 / clients
        var floor = Figures()
        var daemonFigures = Figures()
        var infoFigures = Figures()
        for _ in 0..<rounds {
            // One client also times GetInfo, in the same alternation.
            for (socket, message) in [(echoSocket, echoMessage), (daemonSocket, plan)]
                + (clients == 1 ? [(daemonSocket, getInfo)] : [])
            {
                let fields = try run("\(work)/floor_client", [socket, message, "\(calls)", "\(clients)"]).split(
                    separator: " "
                ).compactMap { Double($0.trimmed) }
                let figures = Figures(p50: [fields[0]], p99: [fields[1]], perSecond: [fields[2]])
                switch (socket == echoSocket, message == plan) {
                case (true, _): floor.append(figures)
                case (false, true): daemonFigures.append(figures)
                case (false, false): infoFigures.append(figures)
                }
            }
        }
        func summary(_ values: [Double], _ digits: Int) -> String {
            let sorted = values.sorted()
            return
                "\(sorted[sorted.count / 2].significantDigits(digits)) [\(sorted[0].significantDigits(digits))–\(sorted[sorted.count - 1].significantDigits(digits))]"
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let label = clients == 1 ? "1 client" : "\(clients) clients"
        print("socket, \(label), median [range] of \(rounds) alternating rounds:")
        print(
            "  echo floor:     p50 \(summary(floor.p50, 3)) µs, p99 \(summary(floor.p99, 3)) µs, \(summary(floor.perSecond, 3)) calls/s"
        )
        print(
            "  daemon Plan:    p50 \(summary(daemonFigures.p50, 3)) µs, p99 \(summary(daemonFigures.p99, 3)) µs, \(summary(daemonFigures.perSecond, 3)) plans/s"
        )
        print(
            "  daemon / floor: p50 \((median(daemonFigures.p50) / median(floor.p50)).significantDigits(3))×, p99 \((median(daemonFigures.p99) / median(floor.p99)).significantDigits(3))×, throughput \((median(daemonFigures.perSecond) / median(floor.perSecond) * 100).significantDigits(3)) % of the echo server's"
        )
        if !infoFigures.p50.isEmpty {
            print(
                "  daemon GetInfo (no planning, 168-byte reply): p50 \(summary(infoFigures.p50, 3)) µs = \((median(infoFigures.p50) / median(floor.p50)).significantDigits(3))× the floor, p99 \(summary(infoFigures.p99, 3)) µs"
            )
        }
    }
    // Memory after a million plans (64 connections), the daemon alone.
    let millionClients = 64
    let millionCalls =
        (Int(ProcessInfo.processInfo.environment["EDGEPLAN_RSS_PLANS"] ?? "") ?? 1_000_000) / millionClients
    let before = memory(daemon.processIdentifier)
    let million = try run("\(work)/floor_client", [daemonSocket, plan, "\(millionCalls)", "\(millionClients)", "0"])
        .split(separator: " ")
    print(
        "daemon RSS: \(before) before; \(memory(daemon.processIdentifier)) after \(millionCalls * millionClients) plans over \(millionClients) connections (p99 \(million[1]) µs, errors \(million[4].trimmed))"
    )
    daemon.terminate()
    echo.terminate()
    daemon.waitUntilExit()
    echo.waitUntilExit()
    try? FileManager.default.removeItem(atPath: work)
} else {
    print("socket: skipped (build the edgeplan product and run from the repository root, with a C compiler)")
}

// Watchdog: a refit from 100,000 reported runs, and the cost of sampling power rails at 20 Hz.
let variant = try planner.profile.variant(model: "DSR1-Llama-8B", quantization: .fp16)
let predictor = Predictor(device: planner.profile.device)
var generator = SystemRandomNumberGenerator()
let runs = (0..<100_000).map { index -> RunReport in
    let input = Int.random(in: 64...2048, using: &generator)
    let output = Int.random(in: 32...2048, using: &generator)
    let predicted = predictor.predict(variant, input: input, output: Double(output))
    let noise = 1 + Double.random(in: -0.03...0.03, using: &generator)
    return RunReport(
        variant: variant.id,
        inputTokens: input,
        outputTokens: output,
        parallel: 1,
        latencyS: predicted.latencyS * 1.2 * noise,
        energyJ: predicted.energyJ * noise,
        time: Double(index)
    )
}
var refits: [Double] = []
for _ in 0..<7 {
    let start = now()
    let outcome = try Recalibrator().refit(
        variant,
        device: planner.profile.device,
        runs: runs,
        at: 1e5,
        label: "benchmark"
    )
    refits.append(now() - start)
    precondition(outcome.accepted)
}
refits.sort()
print(
    String(
        format: "refit from 100,000 runs: median %.1f ms, min %.1f ms (7 runs)",
        percentile(refits, 0.5) * 1e3,
        refits[0] * 1e3
    )
)

let railRoot = NSTemporaryDirectory() + "edgeplan-bench-rails-\(getpid())"
let hwmon = "\(railRoot)/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
try FileManager.default.createDirectory(atPath: hwmon, withIntermediateDirectories: true)
for (k, label) in [(1, "VDD_GPU_SOC"), (2, "VDD_CPU_CV"), (3, "VIN_SYS_5V0")] {
    try "\(label)\n".write(toFile: "\(hwmon)/in\(k)_label", atomically: true, encoding: .utf8)
    try "5000\n".write(toFile: "\(hwmon)/in\(k)_input", atomically: true, encoding: .utf8)
    try "1000\n".write(toFile: "\(hwmon)/curr\(k)_input", atomically: true, encoding: .utf8)
}
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(
        usage.ru_utime.tv_usec + usage.ru_stime.tv_usec
    ) / 1e6
}
var shares: [Double] = []
for _ in 0..<3 {
    let sampler = RailSampler(source: try PowerRails.open(.ina3221, sysfsRoot: railRoot), interval: 0.05)
    let cpuStart = cpuSeconds()
    let wallStart = now()
    sampler.start()
    Thread.sleep(forTimeInterval: 5)
    sampler.stop()
    let share = (cpuSeconds() - cpuStart) / (now() - wallStart)
    shares.append(share)
    precondition(sampler.status.samples >= 90)
}
shares.sort()
print(
    String(
        format: "rail sampling at 20 Hz (3 INA3221 rails): %.3f %% of a core (median of 3 runs of 5 s)",
        shares[1] * 100
    )
)
try? FileManager.default.removeItem(atPath: railRoot)
