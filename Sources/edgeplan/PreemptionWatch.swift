import EdgePlanCore
import EdgePlanDaemon
import Foundation
import Synchronization

/// Follows a daemon's preempt events on a connection of its own, as `ask` runs: a run they name is stopped at once
/// (its engine requests closed) and reported as preempted. Subscribed before the first plan, so that no preemption of a
/// run it holds is missed. A daemon that cannot be watched leaves every run to its deadline.
final class PreemptionWatch: Sendable {
    private let preempted = Mutex<Set<String>>([])
    private let watching = Mutex(false)

    init(socketPath: String) {
        let confirmed = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            defer { confirmed.signal() }
            guard let client = try? VarlinkClient(socketPath: socketPath) else { return }
            do {
                try client.send(
                    "io.edgeplan.Planner.Watch",
                    .fields(["kinds": .array([.string("preempt")])]),
                    more: true
                )
                while true {
                    let reply = try client.receive()
                    guard reply["error"] == nil else { return }
                    if reply["parameters"]?["kind"]?.stringValue == "watching" {
                        watching.withLock { $0 = true }
                        confirmed.signal()
                        continue
                    }
                    guard reply["parameters"]?["kind"]?.stringValue == "preempt",
                        case let .array(ids)? = reply["parameters"]?["event"]?["requestIds"]
                    else { continue }
                    let named = ids.compactMap(\.stringValue)
                    preempted.withLock { $0.formUnion(named) }
                }
            } catch {
                return
            }
        }
        thread.start()
        _ = confirmed.wait(timeout: .now() + 2)
    }

    /// Whether the daemon confirmed the subscription.
    var isWatching: Bool { watching.withLock { $0 } }

    /// Returns once the daemon has made `requestID` yield, or when the calling task is cancelled.
    func yielded(_ requestID: String) async {
        while !Task.isCancelled {
            if preempted.withLock({ $0.contains(requestID) }) { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}
