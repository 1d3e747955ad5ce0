import EdgePlanCore
import Synchronization

/// The daemon's recent plans by request id, so a `Report` can name only the id and so learning hears only about
/// plans the daemon actually made, each once. Bounded: past `capacity` the oldest plan is forgotten.
public final class PlanMemory: Sendable {
    /// What the daemon decided for one request.
    public struct Entry: Sendable, Equatable {
        public var taskClass: String
        public var configuration: Configuration
        public var inputTokens: Int
        public var predictedAccuracy: Double
        public var reported = false
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var head = 0
        var forgotten = 0
    }

    private let state = Mutex(State())
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
    }

    /// Remembers a plan; a request id seen before is replaced.
    public func remember(_ requestID: String, _ entry: Entry) {
        guard capacity > 0 else { return }
        state.withLock { state in
            if state.entries.updateValue(entry, forKey: requestID) != nil { return }
            if state.order.count < capacity {
                state.order.append(requestID)
                return
            }
            // A ring over the ids: overwrite the oldest.
            let oldest = state.order[state.head]
            state.entries[oldest] = nil
            state.order[state.head] = requestID
            state.head = (state.head + 1) % capacity
            state.forgotten += 1
        }
    }

    public func entry(_ requestID: String) -> Entry? { state.withLock { $0.entries[requestID] } }

    /// Marks a plan reported; returns false if it already was (each plan teaches once).
    public func markReported(_ requestID: String) -> Bool {
        state.withLock { state in
            guard var entry = state.entries[requestID], !entry.reported else { return false }
            entry.reported = true
            state.entries[requestID] = entry
            return true
        }
    }

    public var count: Int { state.withLock { $0.entries.count } }
    public var forgotten: Int { state.withLock { $0.forgotten } }
}
