import EdgePlanCore
import Foundation
import Synchronization

/// Replays a recorded power trace: JSON lines `{"time_s": 0.05, "rails": {"VDD_GPU_SOC": 12.3, ...}}`
/// (watts per rail), one reading per `read()`, starting over at the end.
public final class ReplaySource: PowerRailSource {
    public struct Sample: Sendable {
        public var timeS: Double
        public var rails: [RailSample]
    }

    public let samples: [Sample]
    private let cursor = Mutex(0)
    public let description: String

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EdgePlanError(.io, "cannot read power trace", file: path)
        }
        var samples: [Sample] = []
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let value: JSONValue
            do { value = try JSONValue.parse(Array(line.utf8)) } catch let error as EdgePlanError {
                throw EdgePlanError.invalidFile(error.message, file: path, line: index + 1)
            }
            guard let time = value["time_s"]?.doubleValue, time.isFinite else {
                throw EdgePlanError.invalidFile("needs a number time_s", file: path, line: index + 1, field: "time_s")
            }
            guard case let .object(pairs)? = value["rails"], !pairs.isEmpty else {
                throw EdgePlanError.invalidFile(
                    "needs a rails object of watts",
                    file: path,
                    line: index + 1,
                    field: "rails"
                )
            }
            let rails = try pairs.map { name, watts -> RailSample in
                guard let power = watts.doubleValue, power.isFinite, power >= 0 else {
                    throw EdgePlanError.invalidFile(
                        "rail power must be a non-negative number",
                        file: path,
                        line: index + 1,
                        field: "rails.\(name)"
                    )
                }
                return RailSample(name: name, powerW: power, voltageV: nil, currentA: nil)
            }
            samples.append(Sample(timeS: time, rails: rails))
        }
        guard !samples.isEmpty else { throw EdgePlanError.invalidFile("power trace is empty", file: path) }
        self.samples = samples
        self.description = "replay of \((path as NSString).lastPathComponent) (\(samples.count) samples)"
    }

    public func read() throws -> RailReading {
        let index = cursor.withLock { cursor -> Int in
            defer { cursor = (cursor + 1) % samples.count }
            return cursor
        }
        return RailReading(rails: samples[index].rails, energyCounterJ: nil, problems: [])
    }
}
