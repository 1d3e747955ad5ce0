import EdgePlanCore
import Synchronization

/// The daemon's recent plans by request id, so a `Report` can name only the id and so learning hears only about
/// plans the daemon actually made, each once. Bounded: past `capacity` the oldest plan is forgotten.
///
/// Compact, since it holds tens of thousands of plans: a plan is one fixed-size slot in a ring, its task class and
/// configuration stand as indices into tables of the distinct ones seen, and its request id as a 64-bit hash seeded
/// per process (so no client can aim two ids at one slot). About 32 bytes a plan with the index, against about
/// 220 as dictionary entries of strings and configurations.
public final class PlanMemory: Sendable {
    /// What the daemon decided for one request.
    public struct Entry: Sendable, Equatable {
        public var taskClass: String
        public var configuration: Configuration
        public var inputTokens: Int
        /// When the plan was made, in whole Unix seconds (0: unknown).
        public var plannedAtS: UInt32 = 0
        public var reported = false
    }

    private struct Slot {
        var key: UInt64
        var inputTokens: Int32
        var plannedAtS: UInt32
        var configuration: Int32
        var taskClass: UInt16
        var reported: Bool
    }

    private struct State {
        var slots: [Slot] = []
        /// Where each remembered request id's slot is.
        var index = SlotIndex()
        var head = 0
        var forgotten = 0
        /// The distinct task classes and configurations plans named, each stored once.
        var taskClasses: [String] = []
        var taskClassIndex: [String: UInt16] = [:]
        var configurations: [Configuration] = []
        var configurationIndex: [Configuration: Int32] = [:]

        mutating func intern(_ taskClass: String) -> UInt16 {
            if let index = taskClassIndex[taskClass] { return index }
            taskClasses.append(taskClass)
            taskClassIndex[taskClass] = UInt16(taskClasses.count - 1)
            return UInt16(taskClasses.count - 1)
        }

        mutating func intern(_ configuration: Configuration) -> Int32 {
            if let index = configurationIndex[configuration] { return index }
            configurations.append(configuration)
            configurationIndex[configuration] = Int32(configurations.count - 1)
            return Int32(configurations.count - 1)
        }

        func position(of key: UInt64) -> Int32? {
            index.position(of: key) { slots[Int($0)].key }
        }

        /// Indexes the slot at `position`, which already holds `key`.
        mutating func index(_ key: UInt64, at position: Int) {
            let slots = self.slots
            index.insert(key, at: Int32(position)) { slots[Int($0)].key }
        }

        mutating func forget(_ key: UInt64) {
            let slots = self.slots
            index.remove(key) { slots[Int($0)].key }
        }

        func entry(_ slot: Slot) -> Entry {
            Entry(
                taskClass: taskClasses[Int(slot.taskClass)],
                configuration: configurations[Int(slot.configuration)],
                inputTokens: Int(slot.inputTokens),
                plannedAtS: slot.plannedAtS,
                reported: slot.reported
            )
        }
    }

    private let state = Mutex(State())
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
    }

    private static func key(_ requestID: String) -> UInt64 {
        var hasher = Hasher()
        hasher.combine(requestID)
        return UInt64(bitPattern: Int64(hasher.finalize()))
    }

    /// Remembers a plan; a request id seen before is replaced.
    public func remember(_ requestID: String, _ entry: Entry) {
        guard capacity > 0 else { return }
        let key = Self.key(requestID)
        state.withLock { state in
            let slot = Slot(
                key: key,
                inputTokens: Int32(clamping: entry.inputTokens),
                plannedAtS: entry.plannedAtS,
                configuration: state.intern(entry.configuration),
                taskClass: state.intern(entry.taskClass),
                reported: entry.reported
            )
            if let position = state.position(of: key) {
                state.slots[Int(position)] = slot
                return
            }
            if state.slots.count < capacity {
                if state.slots.isEmpty { state.slots.reserveCapacity(min(capacity, 1 << 16)) }
                state.slots.append(slot)
                state.index(key, at: state.slots.count - 1)
                return
            }
            // A ring: overwrite the oldest.
            state.forget(state.slots[state.head].key)
            state.slots[state.head] = slot
            state.index(key, at: state.head)
            state.head = (state.head + 1) % capacity
            state.forgotten += 1
        }
    }

    public func entry(_ requestID: String) -> Entry? {
        let key = Self.key(requestID)
        return state.withLock { state in state.position(of: key).map { state.entry(state.slots[Int($0)]) } }
    }

    /// Marks a plan reported; returns false if it already was (each plan teaches once).
    public func markReported(_ requestID: String) -> Bool {
        let key = Self.key(requestID)
        return state.withLock { state in
            guard let position = state.position(of: key), !state.slots[Int(position)].reported else { return false }
            state.slots[Int(position)].reported = true
            return true
        }
    }

    public var count: Int { state.withLock { $0.slots.count } }
    public var forgotten: Int { state.withLock { $0.forgotten } }
}
