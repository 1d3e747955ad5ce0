import EdgePlanCore
import Foundation
import Synchronization

/// What happens in the daemon, for `Watch` subscribers: decisions, infeasible requests, reports, recalibrations,
/// rollbacks, drift and reloads, each as it happens.
///
/// Publishing costs one atomic load while nobody watches, and an event is built once however many watch. A
/// subscriber never slows the daemon: one that falls behind loses events, and its next event says how many.
public final class EventStream: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case decision, infeasible, report, recalibration, rollback, drift, reload, preempt
    }

    /// Events a subscriber may have in flight before further ones are dropped and counted.
    public static let maximumPending = 1024

    /// One watcher: the kinds it wants and how events reach it.
    public final class Subscriber: Sendable {
        let kinds: Set<Kind>
        /// Hands an event over; returns false when the watcher cannot take it now (it is then counted as dropped).
        let deliver: @Sendable (JSONValue) -> Bool

        public init(kinds: Set<Kind>, deliver: @escaping @Sendable (JSONValue) -> Bool) {
            self.kinds = kinds
            self.deliver = deliver
        }
    }

    private let subscribers = Mutex<[ObjectIdentifier: Subscriber]>([:])
    private let count = Atomic<Int>(0)

    public init() {}

    public func subscribe(_ subscriber: Subscriber) {
        subscribers.withLock { $0[ObjectIdentifier(subscriber)] = subscriber }
        count.add(1, ordering: .releasing)
    }

    public func unsubscribe(_ subscriber: Subscriber) {
        let removed = subscribers.withLock { $0.removeValue(forKey: ObjectIdentifier(subscriber)) != nil }
        if removed { count.subtract(1, ordering: .releasing) }
    }

    /// Whether anyone watches; publishers skip building an event when nobody does.
    public var isWatched: Bool { count.load(ordering: .acquiring) > 0 }

    /// Publishes one event of `kind`; `fields` is built only if a subscriber wants this kind.
    public func publish(_ kind: Kind, _ fields: () -> JSONValue) {
        guard isWatched else { return }
        let wanting = subscribers.withLock { $0.values.filter { $0.kinds.contains(kind) } }
        guard !wanting.isEmpty else { return }
        let event = JSONValue.fields([
            "kind": .string(kind.rawValue), "time": .number(Date().timeIntervalSince1970), "event": fields(),
        ])
        for subscriber in wanting { _ = subscriber.deliver(event) }
    }
}
