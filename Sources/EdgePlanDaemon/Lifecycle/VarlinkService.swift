import ServiceLifecycle

/// The Varlink listener as a service: it serves until a graceful shutdown (or until the listener fails), then
/// stops accepting, lets every connection receive the replies it is owed, and stops the event loops.
struct VarlinkService: Service, CustomStringConvertible {
    let server: VarlinkServer
    /// How long connections get to finish before they are closed regardless.
    let quiesceTimeout: Duration
    /// Runs once the service group is running, its stop signals trapped (tells systemd READY=1).
    let ready: @Sendable () -> Void
    /// Runs when stopping begins (tells systemd and the journal).
    let stopping: @Sendable () -> Void
    var description: String { "varlink" }

    func run() async {
        ready()
        await withGracefulShutdownHandler {
            await server.closed()
        } onGracefulShutdown: {
            stopping()
            server.beginQuiescing()
        }
        await server.quiesce(timeout: quiesceTimeout)
    }
}
