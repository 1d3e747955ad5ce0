import CSystemd
import Foundation

/// `sd_notify` for the service manager: READY, STATUS, WATCHDOG, RELOADING, STOPPING. A no-op outside systemd.
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Whether a service manager listens (NOTIFY_SOCKET is set).
    public var isActive: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    @discardableResult
    public func notify(_ state: String) -> Bool {
        state.withCString { edgeplan_sd_notify(0, $0) } > 0
    }

    public func ready(status: String) { notify("READY=1\nSTATUS=\(status)") }
    public func status(_ text: String) { notify("STATUS=\(text)") }
    public func watchdog() { notify("WATCHDOG=1") }
    public func stopping(status: String) { notify("STOPPING=1\nSTATUS=\(status)") }

    /// RELOADING=1 with the monotonic timestamp systemd's reload protocol asks for.
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let micros = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        notify("RELOADING=1\nMONOTONIC_USEC=\(micros)\nSTATUS=reloading policy and profile")
    }

    /// The watchdog period the manager expects pings within (WATCHDOG_USEC), when enabled for this process.
    public var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec))
    }
}

/// Sockets handed over by the service manager (`sd_listen_fds`).
public enum SocketActivation {
    /// The first passed listening descriptor, or nil when the process was not socket-activated.
    public static func listeningDescriptor() -> CInt? {
        let count = sd_listen_fds(1)
        guard count > 0 else { return nil }
        return SD_LISTEN_FDS_START
    }
}
