import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct Rails: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rails",
        abstract:
            "Show live power-rail readings (INA3221, NVML, RAPL or a replayed trace), like a small tegrastats for power."
    )

    @Option(
        help: "Source: \(PowerRailKind.allCases.map(\.rawValue).joined(separator: ", ")) (default: the first found)."
    ) var source: String?
    @Option(help: "Time between readings, e.g. 100ms or 1s.") var interval: String = "100ms"
    @Option(parsing: .unconditional, help: "Stop after this many readings (default: until interrupted).") var count:
        Int?
    @Option(help: "Read sysfs and procfs below this directory instead of /.") var sysfsRoot: String = "/"
    @Option(help: "Power trace to replay (JSON lines with time_s and rails).") var replay: String?
    @Flag(help: "One JSON object per reading.") var json = false

    func validate() throws {
        if let source, PowerRailKind(rawValue: source) == nil {
            throw ValidationError(
                "unknown --source '\(source)'; use \(PowerRailKind.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        let seconds = try parseSeconds(interval, "interval")
        guard seconds >= 0.001, seconds <= 3600 else { throw ValidationError("--interval must be within 1ms...1h") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if source == "replay", replay == nil { throw ValidationError("--source replay needs --replay FILE") }
    }

    func run() async throws {
        try await reportingErrors {
            let kind = source.flatMap(PowerRailKind.init(rawValue:)) ?? (replay != nil ? .replay : nil)
            let rails = try PowerRails.open(kind, sysfsRoot: sysfsRoot, replayFile: replay)
            let root = SysfsRoot(sysfsRoot)
            let pause = try parseSeconds(interval, "interval")
            if !json {
                print("\(rails.description); \(DeviceContext.read(root).summary)")
            }
            var taken = 0
            var firstCounter: (Double, Double)?
            while count.map({ taken < $0 }) ?? true {
                if taken > 0 { try await Task.sleep(nanoseconds: UInt64(pause * 1e9)) }
                let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
                let reading = try rails.read()
                taken += 1
                // Energy counters advance in coarse steps (NVML on an H100: about 7 J every 100 ms), so their
                // power is the average since the first reading, which settles as the run goes on.
                var counterPower: Double?
                if let counter = reading.energyCounterJ {
                    if let (time, joules) = firstCounter, now > time {
                        counterPower = (counter - joules) / (now - time)
                    } else {
                        firstCounter = (now, counter)
                    }
                }
                if json {
                    var fields: [(String, JSONValue)] = [
                        (
                            "rails",
                            .object(
                                reading.rails.map {
                                    (
                                        $0.name,
                                        .fields([
                                            "powerW": .number($0.powerW),
                                            "voltageV": $0.voltageV.map(JSONValue.number) ?? .null,
                                            "currentA": $0.currentA.map(JSONValue.number) ?? .null,
                                        ])
                                    )
                                }
                            )
                        ),
                        ("totalW", .number(reading.totalW)),
                    ]
                    if let counter = reading.energyCounterJ { fields.append(("energyCounterJ", .number(counter))) }
                    if let counterPower { fields.append(("counterPowerW", .number(counterPower))) }
                    if !reading.problems.isEmpty {
                        fields.append(("problems", .array(reading.problems.map(JSONValue.string))))
                    }
                    print(JSONValue.object(fields).serialized())
                } else {
                    var line =
                        reading.rails.map { "\($0.name) \(format($0.powerW, 2)) W" }.joined(separator: "  ")
                        + "  | total \(format(reading.totalW, 2)) W"
                    if let counterPower { line += "  (energy counter, average so far: \(format(counterPower, 2)) W)" }
                    if !reading.problems.isEmpty { line += "  [\(reading.problems.joined(separator: "; "))]" }
                    print(line)
                }
                fflush(nil)
            }
        }
    }
}
