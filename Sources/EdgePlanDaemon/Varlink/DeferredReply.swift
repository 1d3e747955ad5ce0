import Dispatch
import EdgePlanCore
import Synchronization

/// A reply that may go out only once what it acknowledges is stored: a `Report`'s run and outcome committed to the
/// observation store. Each write it waits for takes a completion from ``expect()``; once every one has come back and
/// the reply is sealed, it is handed to whoever waits for it (the connection, which keeps replies in call order).
/// A write that fails turns `accepted` false and says why in `reason`.
public final class DeferredReply: Sendable {
    private struct State {
        var outstanding = 0
        var sealed: JSONValue?
        var failure: String?
        var learning: String?
        var attributedJ: Double?
        var deliver: (@Sendable (JSONValue) -> Void)?
        var delivered = false
    }

    private let state = Mutex(State())

    public init() {}

    /// A completion to hand to one write: call it with nil once committed, or with the error.
    public func expect() -> @Sendable (String?) -> Void {
        state.withLock { $0.outstanding += 1 }
        return { [self] failure in
            state.withLock { state in
                state.outstanding -= 1
                if let failure, state.failure == nil { state.failure = failure }
            }
            fireIfReady()
        }
    }

    /// What became of the outcome's learning, once the learner has seen it (replaces the reply's `learning`).
    func setLearning(_ note: String) { state.withLock { $0.learning = note } }

    /// The energy the rails attributed to the run once they covered its window (replaces `attributedEnergyJ`).
    func setAttributedEnergy(_ joules: Double) { state.withLock { $0.attributedJ = joules } }

    /// The reply's parameters, known once the call is handled; it goes out when the writes are done.
    func seal(_ parameters: JSONValue) {
        state.withLock { $0.sealed = parameters }
        fireIfReady()
    }

    /// Calls `deliver` once with the whole reply (`{"parameters": ...}`), now or when the writes are done.
    public func whenReady(_ deliver: @escaping @Sendable (JSONValue) -> Void) {
        state.withLock { $0.deliver = deliver }
        fireIfReady()
    }

    /// Blocks until the reply is ready (for in-process callers, never on an event loop).
    public func wait() -> JSONValue {
        let box = Mutex<JSONValue?>(nil)
        let done = DispatchSemaphoreBox()
        whenReady { reply in
            box.withLock { $0 = reply }
            done.signal()
        }
        done.wait()
        return box.withLock { $0! }
    }

    private func fireIfReady() {
        let ready = state.withLock { state -> (JSONValue, @Sendable (JSONValue) -> Void)? in
            guard !state.delivered, state.outstanding == 0, let sealed = state.sealed, let deliver = state.deliver
            else { return nil }
            state.delivered = true
            return (
                Self.reply(sealed, failure: state.failure, learning: state.learning, attributedJ: state.attributedJ),
                deliver
            )
        }
        if let (reply, deliver) = ready { deliver(reply) }
    }

    static func reply(
        _ parameters: JSONValue,
        failure: String?,
        learning: String?,
        attributedJ: Double? = nil
    ) -> JSONValue {
        guard failure != nil || learning != nil || attributedJ != nil, case let .object(fields) = parameters else {
            return .object([("parameters", parameters)])
        }
        var changed = fields.map { field -> (String, JSONValue) in
            if field.0 == "accepted", failure != nil { return (field.0, .bool(false)) }
            if field.0 == "learning", let learning { return (field.0, .string(learning)) }
            if field.0 == "attributedEnergyJ", let attributedJ { return (field.0, .number(attributedJ)) }
            return field
        }
        if let failure { changed.append(("reason", .string("not stored: \(failure)"))) }
        return .object([("parameters", .object(changed))])
    }
}

/// A semaphore that can be captured by a sendable closure.
final class DispatchSemaphoreBox: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func signal() { semaphore.signal() }
    func wait() { semaphore.wait() }
}
