import EdgePlanCore
import Foundation
import Synchronization

/// Samples a power source in the background at a fixed rate into a bounded ring of (time, watts), and
/// attributes energy to a time window by integrating it.
public final class RailSampler: Sendable {
    public struct Sample: Sendable, Equatable {
        public var time: Double
        public var totalW: Double
    }

    private struct State {
        var ring: [Sample] = []
        var next = 0
        var count = 0
        var latest: RailReading?
        var failures = 0
        var lastError: String?
        var running = true
    }

    public let source: any PowerRailSource
    public let interval: Double
    public let capacity: Int
    private let state: Mutex<State>
    private let clock: @Sendable () -> Double

    /// `interval` seconds between samples (0.05 for 20 Hz); `capacity` samples kept (the oldest go first).
    public init(
        source: any PowerRailSource,
        interval: Double = 0.05,
        capacity: Int = 12_000,
        clock: @escaping @Sendable () -> Double = RailSampler.monotonicSeconds
    ) {
        self.source = source
        self.interval = interval
        self.capacity = max(capacity, 2)
        self.clock = clock
        self.state = Mutex(State())
    }

    public static let monotonicSeconds: @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Starts the background sampling thread.
    public func start() {
        let thread = Thread { [self] in
            while state.withLock({ $0.running }) {
                sampleOnce()
                Thread.sleep(forTimeInterval: interval)
            }
        }
        thread.name = "edgeplan-rails"
        thread.start()
    }

    public func stop() { state.withLock { $0.running = false } }

    /// Takes one reading now (the background thread calls this; tests may too).
    public func sampleOnce() {
        let now = clock()
        do {
            let reading = try source.read()
            record(Sample(time: now, totalW: reading.totalW), reading: reading)
        } catch {
            state.withLock {
                $0.failures += 1
                $0.lastError = "\(error)"
            }
        }
    }

    func record(_ sample: Sample, reading: RailReading?) {
        state.withLock { state in
            if state.ring.count < capacity { state.ring.append(sample) } else { state.ring[state.next] = sample }
            state.next = (state.next + 1) % capacity
            state.count += 1
            if let reading { state.latest = reading }
        }
    }

    /// The latest reading, samples taken, failed reads and the last error.
    public var status: (latest: RailReading?, samples: Int, failures: Int, lastError: String?) {
        state.withLock { ($0.latest, $0.count, $0.failures, $0.lastError) }
    }

    /// Samples in time order.
    public var samples: [Sample] {
        state.withLock { state in
            state.ring.count < capacity ? state.ring : Array(state.ring[state.next...] + state.ring[..<state.next])
        }
    }

    /// Energy in joules between `start` and `end` (trapezoids over the samples, clipped to the window);
    /// nil when the samples do not cover the window.
    public func energy(from start: Double, to end: Double) -> Double? {
        EnergyIntegrator.joules(samples.map { ($0.time, $0.totalW) }, from: start, to: end)
    }
}
