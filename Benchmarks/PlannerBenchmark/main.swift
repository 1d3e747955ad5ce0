// Planner and daemon benchmarks: prints medians and percentiles over repeated runs.
import EdgePlanCore
import EdgePlanDaemon
import Foundation
import Logging

func percentile(_ sorted: [Double], _ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

let planner = try ProfileStore.loadPlanner(policyPath: nil, profileDirectory: nil)
let tasks = planner.profile.tasks

// Cold front construction: a fresh planner each round so no cache helps.
var cold: [Double] = []
for round in 0..<30 {
    let fresh = try Planner(profile: planner.profile, policy: planner.policy)
    let start = now()
    _ = try fresh.front(task: tasks[round % tasks.count], inputTokens: 512)
    cold.append(now() - start)
}
cold.sort()
print(String(format: "cold front construction: median %.3f ms, p99 %.3f ms (%d rounds)", percentile(cold, 0.5) * 1e3, percentile(cold, 0.99) * 1e3, cold.count))

// Warm decisions: varied deadlines, budgets and inputs on cached fronts.
let requests = (0..<1000).map { i in
    PlanRequest(task: "mmlu-redux", deadlineS: [0.8, 2, 5, 10, 30, 120, 300][i % 7], energyBudgetJ: i % 3 == 0 ? 500 : nil, inputTokens: 100 + (i % 4) * 128)
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
print(String(format: "warm plan decisions: p50 %.2f µs, p99 %.2f µs, %.0f decisions/s (%d decisions, 5 rounds)", percentile(warm, 0.5) * 1e6, percentile(warm, 0.99) * 1e6, Double(warm.count) / total, warm.count))

// The same decisions with learned posteriors in play: 400 outcomes over the configurations the planner picks.
var learner = Learner()
var learnedPlanner = planner
for (index, request) in requests.prefix(400).enumerated() {
    guard case let .plan(plan) = try learnedPlanner.plan(request) else { continue }
    learner.learn(LearningOutcome(taskClass: plan.task, configuration: plan.configuration, correct: index % 3 != 0,
                                  sampleOutputTokens: [Int(plan.meanOutputTokens)], peer: 0), planner: planner)
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
print(String(format: "warm plan decisions, learned posteriors in play (%d configurations learned): p50 %.2f µs, p99 %.2f µs", learner.overlay.accuracy.count, percentile(learnedWarm, 0.5) * 1e6, percentile(learnedWarm, 0.99) * 1e6))

// Simulation throughput: a generated home-robot workload streamed into `edgeplan simulate`'s core, the
// percentile policy recalibrating and learning (run from the repository root, where workloads/ is).
if let mixText = try? String(contentsOfFile: "workloads/home-robot-mix.yaml", encoding: .utf8),
   let policyText = try? String(contentsOfFile: "workloads/home-robot-policy.yaml", encoding: .utf8) {
    let count = Int(ProcessInfo.processInfo.environment["EDGEPLAN_SIM_REQUESTS"] ?? "") ?? 1_000_000
    let mix = try WorkloadMix.decode(mixText, file: "home-robot-mix.yaml")
    let policy = try PolicyDecoder.decode(policyText, file: "home-robot-policy.yaml")
    let truth = try Truth.decode(BundledResources.defaultTruth, file: "truth")
    // Each kind adds one part of the feedback, so the differences show where a simulated request's time goes.
    let kinds: [(String, SimulatedPolicy.Kind)] = [
        ("fixed configuration (oracle and truth only)", .fixed(Configuration(variant: VariantID(model: "DSR1-Qwen-1.5B", quantization: .fp16), mode: .hard, budgetTokens: 128, capped: true, parallel: 1))),
        ("static planner", .planner(recalibrate: false, learn: false)),
        ("planner recalibrating", .planner(recalibrate: true, learn: false)),
        ("planner recalibrating and learning", .planner(recalibrate: true, learn: true)),
    ]
    let only = ProcessInfo.processInfo.environment["EDGEPLAN_SIM_KIND"].flatMap(Int.init)
    for (index, (label, kind)) in kinds.enumerated() where only == nil || only == index {
        var simulator = try Simulator(profile: planner.profile, truth: truth, policies: [SimulatedPolicy(name: "percentile", policy: policy, kind: kind)],
                                      options: .init(seed: 7, windowS: 3600))
        let start = now()
        var generated = 0
        // 40 tasks an hour keeps the device busy about an eighth of the time, as in the shipped day.
        try mix.generate(ratePerS: 40.0 / 3600, durationS: Double(count) / (40.0 / 3600) * 1.2, seed: 7) { task in
            guard generated < count else { return }
            generated += 1
            try simulator.process(task)
        }
        let elapsed = now() - start
        print("simulation, \(label): " + String(format: "%d requests in %.2f s (%.0f requests/s, %.1f µs each), %d recalibrations, %d learned updates",
                     generated, elapsed, Double(generated) / elapsed, elapsed / Double(generated) * 1e6, simulator.runs[0].recalibrations, simulator.runs[0].learnedUpdates))
    }
} else {
    print("simulation: skipped (run from the repository root to find workloads/)")
}
if ProcessInfo.processInfo.environment["EDGEPLAN_BENCH_ONLY"] == "simulation" { exit(0) }

// Over the socket: the real daemon (`edgeplan serve`, built beside this benchmark) in its own process,
// so its memory can be read alone; an in-process server when the binary is not there.
let socketPath = "/tmp/edgeplan-bench-\(getpid()).sock"
let daemonBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edgeplan").path
var daemon: Process?
var inProcessServer: VarlinkServer?
if FileManager.default.isExecutableFile(atPath: daemonBinary) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: daemonBinary)
    process.arguments = ["serve", "--socket", socketPath, "--threads", "2"]
    process.standardError = FileHandle.nullDevice
    try process.run()
    daemon = process
    while !FileManager.default.fileExists(atPath: socketPath) { usleep(10_000) }
    print("daemon: \(daemonBinary) serve (pid \(process.processIdentifier))")
} else {
    var quiet = Logger(label: "bench")
    quiet.logLevel = .error
    let service = try PlannerService(logger: quiet) { planner }
    inProcessServer = try VarlinkServer(endpoint: .path(socketPath), dispatcher: VarlinkDispatcher(service: service), threads: 2)
    print("daemon: in-process (build the edgeplan product to measure the real one)")
}
let parameters = JSONValue.fields(["task": .string("mmlu-redux"), "deadlineMs": .number(5000), "inputTokens": .int(256)])
let client = try VarlinkClient(socketPath: socketPath)
for _ in 0..<500 { _ = try client.call("io.edgeplan.Planner.Plan", parameters) }
var trips: [Double] = []
for _ in 0..<5000 {
    let start = now()
    _ = try client.call("io.edgeplan.Planner.Plan", parameters)
    trips.append(now() - start)
}
trips.sort()
print(String(format: "socket round trip, 1 client: p50 %.1f µs, p99 %.1f µs (%d calls)", percentile(trips, 0.5) * 1e6, percentile(trips, 0.99) * 1e6, trips.count))

let clients = 16, perClient = 2000
let done = DispatchGroup()
let start = now()
for _ in 0..<clients {
    done.enter()
    Thread {
        let connection = try! VarlinkClient(socketPath: socketPath)
        for _ in 0..<perClient { _ = try! connection.call("io.edgeplan.Planner.Plan", parameters) }
        done.leave()
    }.start()
}
done.wait()
let elapsed = now() - start
print(String(format: "socket throughput, %d clients: %.0f plans/s (%d plans in %.2f s)", clients, Double(clients * perClient) / elapsed, clients * perClient, elapsed))
func memory(_ pid: String) -> String {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    return status.split(separator: "\n").filter { $0.hasPrefix("VmRSS") || $0.hasPrefix("VmHWM") }
        .map { $0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces) }.joined(separator: ", peak ")
}
if let daemon {
    print("daemon RSS after the load: \(memory(String(daemon.processIdentifier)))")
    daemon.terminate()
    daemon.waitUntilExit()
} else {
    print("benchmark process (daemon + clients) RSS: \(memory("self"))")
    inProcessServer?.shutdown()
}
unlink(socketPath)

// Watchdog: a refit from 100,000 reported runs, and the cost of sampling power rails at 20 Hz.
let variant = try planner.profile.variant(model: "DSR1-Llama-8B", quantization: .fp16)
let predictor = Predictor(device: planner.profile.device)
var generator = SystemRandomNumberGenerator()
let runs = (0..<100_000).map { index -> RunReport in
    let input = Int.random(in: 64...2048, using: &generator), output = Int.random(in: 32...2048, using: &generator)
    let predicted = predictor.predict(variant, input: input, output: Double(output))
    let noise = 1 + Double.random(in: -0.03...0.03, using: &generator)
    return RunReport(variant: variant.id, inputTokens: input, outputTokens: output, parallel: 1, latencyS: predicted.latencyS * 1.2 * noise,
                     energyJ: predicted.energyJ * noise, time: Double(index))
}
var refits: [Double] = []
for _ in 0..<7 {
    let start = now()
    let outcome = try Recalibrator().refit(variant, device: planner.profile.device, runs: runs, at: 1e5, label: "benchmark")
    refits.append(now() - start)
    precondition(outcome.accepted)
}
refits.sort()
print(String(format: "refit from 100,000 runs: median %.1f ms, min %.1f ms (7 runs)", percentile(refits, 0.5) * 1e3, refits[0] * 1e3))

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
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}
var shares: [Double] = []
for _ in 0..<3 {
    let sampler = RailSampler(source: try PowerRails.open(.ina3221, sysfsRoot: railRoot), interval: 0.05)
    let cpuStart = cpuSeconds(), wallStart = now()
    sampler.start()
    Thread.sleep(forTimeInterval: 5)
    sampler.stop()
    let share = (cpuSeconds() - cpuStart) / (now() - wallStart)
    shares.append(share)
    precondition(sampler.status.samples >= 90)
}
shares.sort()
print(String(format: "rail sampling at 20 Hz (3 INA3221 rails): %.3f %% of a core (median of 3 runs of 5 s)", shares[1] * 100))
try? FileManager.default.removeItem(atPath: railRoot)
