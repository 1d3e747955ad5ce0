import ServiceLifecycle

/// Waits for the shutdown, then finishes what was accepted: queued reports reach the store, the metrics file and the
/// journal are flushed. It starts first, so it stops last, after the listener has stopped taking new work.
struct ShutdownDrain: Service, CustomStringConvertible {
    let drain: @Sendable () -> Void
    var description: String { "drain" }

    func run() async {
        try? await gracefulShutdown()
        drain()
    }
}
