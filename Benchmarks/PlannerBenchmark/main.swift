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
