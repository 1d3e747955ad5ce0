import EdgePlanCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `edgeplan serve`: loads the snapshot, listens, talks to systemd, reloads on SIGHUP, drains on SIGTERM.
public enum Daemon {
    /// MESSAGE_ID of "observation store moved aside" journal entries.
    public static let storeReplacedMessageID = "7a6b5c4d3e2f40918273645546372819"

    public struct Options: Sendable {
        public var socketPath: String?
        public var policyPath: String?
        public var profileDirectory: String?
        public var threads: Int
        /// Where reports and recalibrated profiles live (systemd's STATE_DIRECTORY); nil keeps them in memory.
        public var stateDirectory: String?
        /// Power rails: nil picks the first found, "none" turns sampling off.
        public var railSource: String?
        public var sysfsRoot: String
        public var sampleInterval: Double
        public var refitInterval: Double
        public var limits: VarlinkServer.Limits
        /// Where to write Prometheus metrics (node_exporter textfile format), and how often; nil writes none.
        public var metricsTextfile: String?
        public var metricsInterval: Double = 15

        public init(
            socketPath: String?,
            policyPath: String?,
            profileDirectory: String?,
            threads: Int,
            stateDirectory: String? = nil,
            railSource: String? = nil,
            sysfsRoot: String = "/",
            sampleInterval: Double = 0.05,
            refitInterval: Double = 600,
            limits: VarlinkServer.Limits = .init(),
            metricsTextfile: String? = nil,
            metricsInterval: Double = 15
        ) {
            self.limits = limits
            self.metricsTextfile = metricsTextfile
            self.metricsInterval = metricsInterval
            self.socketPath = socketPath
            self.policyPath = policyPath
            self.profileDirectory = profileDirectory
            self.threads = threads
            self.stateDirectory = stateDirectory
            self.railSource = railSource
            self.sysfsRoot = sysfsRoot
            self.sampleInterval = sampleInterval
            self.refitInterval = refitInterval
        }
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully and returns.
    public static func run(_ options: Options) async throws {
        let sink = JournalSink.automatic()
        LoggingSystem.bootstrap { JournalLogHandler(label: $0, sink: sink) }
        let logger = Logger(label: "edgeplan")
        let notifier = SystemdNotifier()

        let store = try options.stateDirectory.map { directory -> ObservationStore in
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let (store, failure) = try ObservationStore.openOrReplace(path: "\(directory)/observations.sqlite")
            if let failure, let aside = store.movedAside {
                logger.error(
                    "observation store was unreadable; moved aside and started a new one",
                    metadata: [
                        "MESSAGE_ID": "\(Self.storeReplacedMessageID)", "moved_to": "\(aside)", "error": "\(failure)",
                    ]
                )
            }
            return store
        }
        let versions = try options.stateDirectory.map { try ProfileVersionStore(directory: "\($0)/profiles") }
        // The configured profile's version: a recalibrated profile is used only while it derives from it.
        let base = Mutex("")
        let metrics = options.metricsTextfile.map { _ in DaemonMetrics() }
        let service = try PlannerService(logger: logger, journal: sink, metrics: metrics) {
            let configured = try ProfileStore.loadPlanner(
                policyPath: options.policyPath,
                profileDirectory: options.profileDirectory
            )
            base.withLock { $0 = configured.profile.version }
            if let recalibrated = try versions?.current(base: configured.profile.version) {
                return try Planner(profile: recalibrated, policy: configured.policy)
            }
            return configured
        }
        var sampler: RailSampler?
        if options.railSource != "none" {
            do {
                let kind = try options.railSource.map { raw -> PowerRailKind in
                    guard let kind = PowerRailKind(rawValue: raw) else {
                        throw EdgePlanError.invalidInput("unknown rail source '\(raw)'", field: "rails")
                    }
                    return kind
                }
                sampler = RailSampler(
                    source: try PowerRails.open(kind, sysfsRoot: options.sysfsRoot),
                    interval: options.sampleInterval,
                    clock: { Date().timeIntervalSince1970 }
                )
                sampler?.start()
            } catch {
                if options.railSource != nil { throw error }
                logger.notice("no power rails: reported energies only (\(error))")
            }
        }
        let watchdog = try Watchdog(
            service: service,
            base: base.withLock { $0 },
            store: store,
            versions: versions,
            sampler: sampler,
            options: .init(sysfsRoot: options.sysfsRoot, refitInterval: options.refitInterval),
            logger: logger
        )
        let endpoint: VarlinkServer.Endpoint
        if let fd = SocketActivation.listeningDescriptor() {
            endpoint = .descriptor(fd)
        } else if let path = options.socketPath {
            endpoint = .path(path)
        } else {
            throw EdgePlanError.invalidInput(
                "no socket: start under systemd socket activation or pass --socket PATH",
                field: "socket"
            )
        }
        // One reload for SIGHUP and the Reload call: check and swap, re-baseline the watchdog, tell systemd.
        let reload: @Sendable () -> EdgePlanError? = {
            notifier.reloading()
            let failure = service.reload()
            if failure == nil { watchdog.reset(profile: service.planner.profile, base: base.withLock { $0 }) }
            notifier.notify("READY=1\nSTATUS=\(statusLine(service, watchdog: watchdog, failure: failure))")
            return failure
        }
        let limits = connectionLimits(
            options.limits,
            descriptors: raiseDescriptorLimit(for: options.limits, logger: logger),
            logger: logger
        )
        let server = try VarlinkServer(
            endpoint: endpoint,
            dispatcher: VarlinkDispatcher(service: service, watchdog: watchdog, reload: reload),
            threads: options.threads,
            limits: limits
        )

        signal(SIGPIPE, SIG_IGN)
        let writeMetrics: @Sendable () -> Void = {
            guard let metrics, let path = options.metricsTextfile else { return }
            do { try metrics.write(to: path, service: service, watchdog: watchdog) } catch {
                logger.warning("cannot write metrics: \(error)", metadata: ["path": "\(path)"])
            }
        }
        var periodic = [PeriodicTasks.Task(interval: .seconds(1)) { watchdog.tick() }]
        if options.metricsTextfile != nil {
            periodic.append(
                .init(interval: .milliseconds(max(10, Int(options.metricsInterval * 1000))), body: writeMetrics)
            )
        }
        if let interval = notifier.watchdogInterval {
            periodic.append(
                .init(interval: max(interval / 2, .milliseconds(1))) {
                    if healthy(service) {
                        notifier.watchdog()
                    } else {
                        logger.critical("health check failed: the solver does not answer")
                    }
                }
            )
        }
        // Stopping (SIGTERM, SIGINT) runs the services' shutdown in reverse order: the listener quiesces, the
        // timers stop, then the queued reports are drained, all inside the unit's TimeoutStopSec (10 s).
        let services: [any Service] = [
            ShutdownDrain {
                watchdog.drain()
                writeMetrics()
                sink.flush()
            },
            PeriodicTasks(tasks: periodic),
            HangupReload(hangups: await UnixSignalsSequence(trapping: .sighup)) { _ = reload() },
            VarlinkService(server: server, quiesceTimeout: .seconds(4)) {
                let planner = service.planner
                logger.notice(
                    "ready",
                    metadata: [
                        "profile_version": "\(planner.profile.version)", "policy_version": "\(planner.policy.version)",
                        "cached_fronts": "\(planner.cachedFronts)",
                    ]
                )
                notifier.ready(status: statusLine(service, watchdog: watchdog, failure: nil))
            } stopping: {
                logger.notice("stopping: draining connections")
                notifier.stopping(status: "draining")
            },
        ]
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = .seconds(8)

        try await ServiceGroup(configuration: configuration).run()
        sink.flush()
    }

    /// Descriptors kept back from connections: the store, the journal, the rails, profile reads and reloads.
    static let reservedDescriptors = 64

    /// Raises the soft descriptor limit (1024 by default, for select()'s sake) as far as the connection cap needs
    /// and the hard limit allows; returns the limit in force (nil when it cannot be read).
    static func raiseDescriptorLimit(for limits: VarlinkServer.Limits, logger: Logger) -> Int? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let wanted = rlim_t(limits.maxConnections + reservedDescriptors)
        if limit.rlim_cur < wanted {
            limit.rlim_cur = min(wanted, limit.rlim_max)
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// The connection caps within the descriptor limit less the reserve: a full table then refuses or makes room
    /// (see ``ConnectionCount``) instead of accept() failing with EMFILE while clients wait in the backlog.
    static func connectionLimits(
        _ limits: VarlinkServer.Limits,
        descriptors: Int?,
        logger: Logger
    ) -> VarlinkServer.Limits {
        guard let descriptors, descriptors - reservedDescriptors < limits.maxConnections else { return limits }
        var capped = limits
        capped.maxConnections = max(1, descriptors - reservedDescriptors)
        capped.maxConnectionsPerUser = min(limits.maxConnectionsPerUser, capped.maxConnections)
        logger.warning(
            "the descriptor limit is below the connection cap; connections capped to fit it",
            metadata: [
                "descriptor_limit": "\(descriptors)", "reserved": "\(reservedDescriptors)",
                "max_connections": "\(capped.maxConnections)",
                "configured_max_connections": "\(limits.maxConnections)",
            ]
        )
        return capped
    }

    /// The health check behind WATCHDOG=1: the current snapshot must solve a canned request.
    static func healthy(_ service: PlannerService) -> Bool {
        let planner = service.planner
        guard let task = planner.profile.tasks.first else { return false }
        return (try? planner.plan(PlanRequest(task: task, deadlineS: 3600))) != nil
    }

    static func statusLine(_ service: PlannerService, watchdog: Watchdog?, failure: EdgePlanError?) -> String {
        let planner = service.planner
        let counters = service.currentCounters
        var line =
            "serving \(planner.profile.device.name) profile \(planner.profile.version), policy \(planner.policy.version); \(counters.plans) plans, \(counters.infeasible) infeasible"
        if let watchdog { line += "; " + watchdog.summary }
        if let failure {
            line += "; last reload failed: \(failure.description.replacingOccurrences(of: "\n", with: " "))"
        }
        return line
    }
}
