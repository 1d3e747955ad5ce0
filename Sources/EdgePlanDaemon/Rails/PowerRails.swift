import EdgePlanCore
import Foundation

/// One rail's reading: its name and power, with voltage and current where the sensor gives them.
public struct RailSample: Sendable, Equatable {
    public var name: String
    public var powerW: Double
    public var voltageV: Double?
    public var currentA: Double?
}

/// A reading of every rail a source sees, at one moment.
public struct RailReading: Sendable {
    public var rails: [RailSample]
    /// The source's own cumulative energy counter in joules, where it has one (NVML, RAPL).
    public var energyCounterJ: Double?
    /// Channels that could not be read, each naming its file and what was wrong; the others still count.
    public var problems: [String]

    /// Sum of the rails (the INA3221 on AGX Orin has no VDD_IN rail, so the total is the sum).
    public var totalW: Double { rails.reduce(0) { $0 + $1.powerW } }
}

/// A source of power readings: a sensor driver, a GPU library, a recorded trace.
public protocol PowerRailSource: Sendable {
    /// What it reads, e.g. "ina3221 (hwmon, 2 devices)".
    var description: String { get }
    func read() throws -> RailReading
}

/// The sources EdgePlan knows, in the order automatic discovery tries them.
public enum PowerRailKind: String, Sendable, CaseIterable {
    case ina3221
    case ina3221IIO = "ina3221-iio"
    case nvml
    case rapl
    case replay
}

public enum PowerRails {
    /// Opens the source `kind`, or the first that works (INA3221 hwmon, INA3221 IIO, NVML, RAPL) when nil.
    /// Every sysfs path is read below `sysfsRoot`, so tests and replays can root them elsewhere.
    public static func open(
        _ kind: PowerRailKind?,
        sysfsRoot: String = "/",
        replayFile: String? = nil
    ) throws -> any PowerRailSource {
        let root = SysfsRoot(sysfsRoot)
        switch kind {
        case .ina3221?: return try INA3221Source.hwmon(root)
        case .ina3221IIO?: return try INA3221Source.iio(root)
        case .nvml?: return try NVMLSource()
        case .rapl?: return try RAPLSource(root)
        case .replay?:
            guard let replayFile else {
                throw EdgePlanError.invalidInput("the replay source needs a trace file", field: "replay")
            }
            return try ReplaySource(path: replayFile)
        case nil:
            var reasons: [String] = []
            for attempt: () throws -> any PowerRailSource in [
                { try INA3221Source.hwmon(root) }, { try INA3221Source.iio(root) }, { try NVMLSource() },
                { try RAPLSource(root) },
            ] {
                do { return try attempt() } catch { reasons.append("\(error)") }
            }
            throw EdgePlanError(.io, "no power rails found: " + reasons.joined(separator: "; "))
        }
    }
}

/// Paths below a root directory ("/" on a real system).
public struct SysfsRoot: Sendable {
    public let path: String

    public init(_ path: String) { self.path = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path }

    public func resolve(_ absolute: String) -> String { path == "/" ? absolute : path + absolute }

    /// Entries of `directory` (absolute, below the root) whose names start with `prefix`, sorted; none when absent.
    public func entries(_ directory: String, prefix: String = "") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: resolve(directory))) ?? []).filter {
            $0.hasPrefix(prefix)
        }.sorted()
    }

    /// The trimmed text of a file, or an error naming it.
    public func text(_ absolute: String) throws -> String {
        let full = resolve(absolute)
        guard let data = FileManager.default.contents(atPath: full) else {
            let reason = FileManager.default.fileExists(atPath: full) ? "cannot read" : "missing"
            throw EdgePlanError(.io, reason, file: full)
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A file holding one number, or an error naming the file and what it held.
    public func number(_ absolute: String) throws -> Double {
        let raw = try text(absolute)
        guard let value = Double(raw), value.isFinite else {
            throw EdgePlanError(.io, "expected a number, found '\(raw.prefix(40))'", file: resolve(absolute))
        }
        return value
    }

    public func exists(_ absolute: String) -> Bool { FileManager.default.fileExists(atPath: resolve(absolute)) }
}
