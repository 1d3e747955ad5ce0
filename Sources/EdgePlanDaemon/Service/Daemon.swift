import EdgePlanCore
import Foundation
import Logging

/// `edgeplan serve`: loads the snapshot, listens, talks to systemd, reloads on SIGHUP, drains on SIGTERM.
public enum Daemon {
    public struct Options: Sendable {
        public var socketPath: String?
        public var policyPath: String?
        public var profileDirectory: String?
        public var threads: Int

        public init(socketPath: String?, policyPath: String?, profileDirectory: String?, threads: Int) {
            self.socketPath = socketPath
            self.policyPath = policyPath
            self.profileDirectory = profileDirectory
            self.threads = threads
        }
    }

    public static func run(_ options: Options) throws -> Never {
        let sink = JournalSink.automatic()
        LoggingSystem.bootstrap { JournalLogHandler(label: $0, sink: sink) }
        let logger = Logger(label: "edgeplan")
        let notifier = SystemdNotifier()

        let service = try PlannerService(logger: logger, journal: sink) {
            try ProfileStore.loadPlanner(policyPath: options.policyPath, profileDirectory: options.profileDirectory)
        }
        let endpoint: VarlinkServer.Endpoint
        if let fd = SocketActivation.listeningDescriptor() {
            endpoint = .descriptor(fd)
        } else if let path = options.socketPath {
            endpoint = .path(path)
        } else {
            throw EdgePlanError.invalidInput("no socket: start under systemd socket activation or pass --socket PATH", field: "socket")
        }
        let server = try VarlinkServer(endpoint: endpoint, dispatcher: VarlinkDispatcher(service: service), threads: options.threads)

        signal(SIGHUP, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let queue = DispatchQueue(label: "edgeplan.control")
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        hangup.setEventHandler {
            notifier.reloading()
            let failure = service.reload()
            notifier.notify("READY=1\nSTATUS=\(statusLine(service, failure: failure))")
        }
        hangup.resume()
        let stop: @Sendable () -> Void = {
            logger.notice("stopping: draining connections")
            notifier.stopping(status: "draining")
            server.shutdown()
            exit(0)
        }
        let terminate = DispatchSource.makeSignalSource(signal: SIGTERM, queue: queue)
        terminate.setEventHandler(handler: stop)
        terminate.resume()
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: queue)
        interrupt.setEventHandler(handler: stop)
        interrupt.resume()

        var watchdogTimer: (any DispatchSourceTimer)?
        if let interval = notifier.watchdogInterval {
            let timer = DispatchSource.makeTimerSource(queue: queue)
            let half = interval / 2
            let nanos = Int(half.components.seconds) * 1_000_000_000 + Int(half.components.attoseconds / 1_000_000_000)
            timer.schedule(deadline: .now(), repeating: .nanoseconds(max(nanos, 1_000_000)))
            timer.setEventHandler {
                if healthy(service) { notifier.watchdog() } else { logger.critical("health check failed: the solver does not answer") }
            }
            timer.resume()
            watchdogTimer = timer
        }
        _ = watchdogTimer

        let planner = service.planner
        logger.notice("ready", metadata: ["profile_version": "\(planner.profile.version)", "policy_version": "\(planner.policy.version)", "cached_fronts": "\(planner.cachedFronts)"])
        notifier.ready(status: statusLine(service, failure: nil))
        server.wait()
        exit(0)
    }

    /// The health check behind WATCHDOG=1: the current snapshot must solve a canned request.
    static func healthy(_ service: PlannerService) -> Bool {
        let planner = service.planner
        guard let task = planner.profile.tasks.first else { return false }
        return (try? planner.plan(PlanRequest(task: task, deadlineS: 3600))) != nil
    }

    static func statusLine(_ service: PlannerService, failure: EdgePlanError?) -> String {
        let planner = service.planner
        let counters = service.currentCounters
        var line = "serving \(planner.profile.device.name) profile \(planner.profile.version), policy \(planner.policy.version); \(counters.plans) plans, \(counters.infeasible) infeasible"
        if let failure { line += "; last reload failed: \(failure.description.replacingOccurrences(of: "\n", with: " "))" }
        return line
    }
}
