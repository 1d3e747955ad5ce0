import EdgePlanCore
import Foundation
import Synchronization

/// Linux powercap RAPL: cumulative `energy_uj` counters per package zone, which wrap at
/// `max_energy_range_uj`. Power is the counter's increase over the time since the previous read.
public final class RAPLSource: PowerRailSource {
    struct Zone: Sendable {
        var name: String
        var directory: String
        var rangeUJ: Double
    }

    private struct State {
        var last: [Double?]
        var lastTime: Double?
        /// Energy accumulated across wraps, per zone, in joules.
        var totals: [Double]
    }

    let zones: [Zone]
    let root: SysfsRoot
    private let state: Mutex<State>
    private let clock: @Sendable () -> Double
    public let description: String

    public init(_ root: SysfsRoot, clock: @escaping @Sendable () -> Double = RailSampler.monotonicSeconds) throws {
        let base = "/sys/class/powercap"
        // Top-level zones only (intel-rapl:0, not intel-rapl:0:0): subzones are already inside their package.
        let names = root.entries(base, prefix: "intel-rapl:").filter { $0.split(separator: ":").count == 2 }
        var zones: [Zone] = []
        for name in names where root.exists("\(base)/\(name)/energy_uj") {
            let label = (try? root.text("\(base)/\(name)/name")) ?? name
            let range = (try? root.number("\(base)/\(name)/max_energy_range_uj")) ?? Double(UInt32.max)
            zones.append(Zone(name: label, directory: "\(base)/\(name)", rangeUJ: range))
        }
        guard !zones.isEmpty else { throw EdgePlanError(.io, "no RAPL zones with energy_uj", file: root.resolve(base)) }
        self.zones = zones
        self.root = root
        self.clock = clock
        self.state = Mutex(
            State(
                last: Array(repeating: nil, count: zones.count),
                lastTime: nil,
                totals: Array(repeating: 0, count: zones.count)
            )
        )
        self.description = "rapl (\(zones.map(\.name).joined(separator: ", ")))"
    }

    /// The increase of a counter from `previous` to `current`, allowing one wrap at `range`.
    public static func delta(previous: Double, current: Double, range: Double) -> Double {
        current >= previous ? current - previous : current + range - previous
    }

    public func read() throws -> RailReading {
        let now = clock()
        var values: [Double?] = []
        var problems: [String] = []
        for zone in zones {
            do { values.append(try root.number("\(zone.directory)/energy_uj")) } catch {
                values.append(nil)
                problems.append("\(zone.name): \(error)")
            }
        }
        guard values.contains(where: { $0 != nil }) else {
            throw EdgePlanError(.io, "no RAPL zone could be read: " + problems.joined(separator: "; "))
        }
        return state.withLock { state in
            var rails: [RailSample] = []
            let elapsed = state.lastTime.map { now - $0 } ?? 0
            for (index, zone) in zones.enumerated() {
                guard let value = values[index] else { continue }
                var power = 0.0
                if let previous = state.last[index] {
                    let joules = Self.delta(previous: previous, current: value, range: zone.rangeUJ) / 1e6
                    state.totals[index] += joules
                    if elapsed > 0 { power = joules / elapsed }
                }
                state.last[index] = value
                rails.append(RailSample(name: zone.name, powerW: power, voltageV: nil, currentA: nil))
            }
            state.lastTime = now
            return RailReading(rails: rails, energyCounterJ: state.totals.reduce(0, +), problems: problems)
        }
    }
}
