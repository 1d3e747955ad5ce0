import ServiceLifecycle
import UnixSignals

/// Reloads policy and profile on every SIGHUP until a graceful shutdown.
struct HangupReload: Service, CustomStringConvertible {
    let reload: @Sendable () -> Void
    var description: String { "reload-on-SIGHUP" }

    func run() async {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            reload()
        }
    }
}
