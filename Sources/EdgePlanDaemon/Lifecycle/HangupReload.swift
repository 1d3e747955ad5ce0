import ServiceLifecycle
import UnixSignals

/// Reloads policy and profile on every SIGHUP until a graceful shutdown.
struct HangupReload: Service, CustomStringConvertible {
    /// Trapped before the daemon says it is ready, so an early SIGHUP reloads rather than terminates.
    let hangups: UnixSignalsSequence
    let reload: @Sendable () -> Void
    var description: String { "reload-on-SIGHUP" }

    func run() async {
        for await _ in hangups.cancelOnGracefulShutdown() {
            reload()
        }
    }
}
