import EdgePlanCore
import Foundation
import Logging
import Synchronization

/// The daemon's watchdog: stores reported runs (with energy attributed from the power rails when the
/// report has none), feeds them to the ``CalibrationLoop``, follows the power mode, and when the loop
/// recalibrates writes the new profile version and swaps it into the planner.
///
/// Storing, judging, refitting and writing profiles happen on one background queue, in report order, so
/// a `Report` call never waits on disk or a refit, and the event loops that answer `Plan` are not held up.
public final class Watchdog: Sendable {
    /// MESSAGE_ID of "profile recalibrated" journal entries.
    public static let recalibratedMessageID = "3c4d5e6f708192a3b4c5d6e7f8091a2b"
    /// MESSAGE_ID of "recalibration rolled back" journal entries (a peer's runs poisoned a fit).
    public static let rolledBackMessageID = "8b7a6c5d4e3f42a1b0c9d8e7f6a5b4c3"
    /// MESSAGE_ID of "drift detected" journal entries.
    public static let driftMessageID = "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"

    public struct Options: Sendable {
        public var sysfsRoot: String
        /// Seconds between periodic refits.
        public var refitInterval: Double

        public init(sysfsRoot: String = "/", refitInterval: Double = 600) {
            self.sysfsRoot = sysfsRoot
            self.refitInterval = refitInterval
        }
    }

    private struct State {
        var loop: CalibrationLoop
        var base: String
        var lastRefit: Double
        var context = DeviceContext()
        var lastEvent: String?
        /// Recalibrated profiles written and swapped in.
        var installed = 0
        /// Recalibrations rolled back because other peers' runs disagreed.
        var rolledBack = 0
        /// The fleet version learned from (written by `edgeplan fleet sync`), its pseudo-outcomes, and when the
        /// file was last looked at.
        var fleetVersion: Int?
        var fleetOutcomes = 0
        /// What the sync said of the robot's own rows in the version learned (its `ownRows`).
        var fleetOwnRows: JSONValue = .null
        var fleetChecked = 0.0
    }

    /// How often the fleet version file is looked at, in seconds.
    public static let fleetCheckInterval = 30.0

    /// The fleet version `fleet sync` left in the state directory, and its pseudo-outcomes.
    /// Its pseudo-outcomes are made only when its version differs from `known` (the one already learned).
    /// A file without `ownRows` (written before the sync left the robot's own rows out) is not learned: it may hold
    /// the robot's own reports, which would then count twice and corroborate themselves.
    static func fleetPrior(
        _ path: String?,
        unless known: Int? = nil
    ) -> (version: Int, outcomes: [LearningOutcome], ownRows: JSONValue)? {
        guard let path, let data = FileManager.default.contents(atPath: path),
            let file = try? JSONValue.parse(Array(data)), let version = file["version"]?.intValue,
            version != known, let body = file["body"], file["ownRows"]?["leftOut"]?.boolValue == true
        else { return nil }
        return (version, FleetPrior.outcomes(body), file["ownRows"] ?? .null)
    }

    /// A file `fleet sync` writes beside the store (`fleet-version.json`, `fleet-sync.json`).
    static func fleetFile(_ name: String, beside store: ObservationStore?) -> String? {
        store.map { URL(fileURLWithPath: $0.path).deletingLastPathComponent().appendingPathComponent(name).path }
    }

    let service: PlannerService
    public let store: ObservationStore?
    public let versions: ProfileVersionStore?
    public let sampler: RailSampler?
    private let state: Mutex<State>
    private let options: Options
    private let logger: Logger
    private let clock: @Sendable () -> Double
    private let queue = DispatchQueue(label: "edgeplan.watchdog")
    /// Reports handed to the queue and not yet handled, and those dropped because too many were waiting.
    private let backlog = Mutex((waiting: 0, dropped: 0))
    /// Writes to the observation store that failed (disk full, read-only), and the last such error.
    private let storageFailures = Mutex((count: 0, last: String?.none))
    /// MESSAGE_ID of "storage failed" journal entries.
    public static let storageFailedMessageID = "1c2d3e4f5a6b47c8d9e0f1a2b3c4d5e6"

    private func storageFailed(_ what: String, _ error: any Error) {
        let count = storageFailures.withLock { failures -> Int in
            failures.count += 1
            failures.last = "\(what): \(error)"
            return failures.count
        }
        logger.error(
            "cannot \(what): \(error)",
            metadata: ["MESSAGE_ID": "\(Self.storageFailedMessageID)", "storage_failures": "\(count)"]
        )
    }

    /// Most reports allowed to wait: a flood of reports costs the flood, never the daemon's memory.
    public static let maximumBacklog = 10_000

    /// `base` is the version of the configured (not recalibrated) profile the service started from.
    public init(
        service: PlannerService,
        base: String,
        store: ObservationStore?,
        versions: ProfileVersionStore?,
        sampler: RailSampler?,
        options: Options = Options(),
        logger: Logger,
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) throws {
        self.service = service
        self.options = options
        self.store = store
        self.versions = versions
        self.sampler = sampler
        self.logger = logger
        self.clock = clock
        let now = clock()
        var loop = CalibrationLoop(profile: service.planner.profile, at: now)
        if let earlier = try store?.recent(limit: loop.window * 4) { loop.seed(earlier.map(\.run)) }
        state = Mutex(State(loop: loop, base: base, lastRefit: now))
        // The fleet's version first, as the prior; then the robot's own outcomes, which dominate once they are many.
        let prior = Self.fleetPrior(Self.fleetFile("fleet-version.json", beside: store))
        let own = try store?.outcomes() ?? []
        if let prior {
            state.withLock {
                $0.fleetVersion = prior.version
                $0.fleetOutcomes = prior.outcomes.count
                $0.fleetOwnRows = prior.ownRows
                $0.fleetChecked = now
            }
            logger.notice(
                "fleet version learned as the prior",
                metadata: ["fleet_version": "\(prior.version)", "outcomes": "\(prior.outcomes.count)"]
            )
        }
        let outcomes = (prior?.outcomes ?? []) + own
        if !outcomes.isEmpty {
            service.replay(outcomes)
            logger.notice("learned posteriors restored", metadata: ["outcomes": "\(own.count)"])
        }
    }

    /// Learns from a remembered plan's outcome on the background queue and stores it, so it survives restarts.
    /// Returns false when the queue is full: the outcome is dropped and counted.
    @discardableResult
    ///
    /// `done` is called on the watchdog's queue once the outcome is committed to the store (or refused, and then
    /// neither stored nor learned), with the storage error if any and what the learner refused.
    public func learn(
        _ outcome: LearningOutcome,
        done: (@Sendable (_ storageError: String?, _ refusals: [Learner.Refusal]) -> Void)? = nil
    ) -> Bool {
        guard admit() else { return false }
        queue.async { [self] in
            defer { backlog.withLock { $0.waiting -= 1 } }
            let refusals = service.learn(outcome)
            // Refused evidence is not stored: a replay would refuse it again anyway.
            guard
                !refusals.contains(.implausiblePeer) && !refusals.contains(.peerEvidenceCap)
                    && !refusals.contains(.unknownConfiguration)
            else {
                done?(nil, refusals)
                return
            }
            do {
                try store?.appendOutcome(outcome, at: clock())
                done?(nil, refusals)
            } catch {
                storageFailed("store an outcome", error)
                done?("\(error)", refusals)
            }
        }
        return true
    }

    /// Queues one report to be stored and judged; returns whether it was queued (false when the backlog is full:
    /// the report is dropped and counted) and the energy attributed to it from the rails, if any.
    ///
    /// `done` is called on the watchdog's queue once the run is committed to the store (WAL: a SIGKILL after it
    /// loses nothing), with the error when it could not be.
    @discardableResult
    public func record(
        _ report: OutcomeReport,
        done: (@Sendable (_ storageError: String?) -> Void)? = nil,
        attributed onAttributed: (@Sendable (Double) -> Void)? = nil
    ) -> (queued: Bool, attributedJ: Double?) {
        var energy = report.energyJ
        var energySource: String? = energy == nil ? nil : "reported"
        var attributed: Double?
        var settle: Double?
        // Rails measure the whole engine: a run that shared it with others gets its share of their energy.
        let share = min(1, max(report.energyShare ?? 1, 1e-3))
        if energy == nil, let started = report.startedAt, let sampler {
            attributed = sampler.energy(from: started, to: started + report.latencyS).map { $0 * share }
            if attributed != nil {
                energy = attributed
                energySource = "rails"
            } else if started + report.latencyS <= clock() + sampler.interval, started + report.latencyS > clock() - 60
            {
                // A report sent as its run ends arrives before the rails' next sample covers the run's window:
                // attribute once two more samples are in (the reply does not wait for them).
                settle = 2 * sampler.interval + 0.005
            }
        }
        let now = clock()
        guard admit() else { return (false, attributed) }
        // The run is stored at once, so the reply (which waits for the store) never waits for the rails. A run whose
        // window the rails cover only after their next samples gets its energy then: the row is updated, and only
        // then does the calibration loop judge it, with its energy.
        var measured = RunReport(
            variant: VariantID(model: report.model, quantization: report.quantization),
            inputTokens: report.inputTokens,
            outputTokens: report.outputTokens,
            parallel: report.parallel,
            latencyS: report.latencyS,
            energyJ: energy,
            time: now,
            peer: report.peer
        )
        measured.runningSequences = report.runningSequences
        measured.energyShare = report.energyShare
        let run = measured
        let judge: @Sendable (RunReport) -> Void = { [self] run in
            defer { backlog.withLock { $0.waiting -= 1 } }
            let events = state.withLock { $0.loop.report(run, at: now) }
            handle(events, at: now)
        }
        queue.async { [self, energySource, settle] in
            var rowID: Int64?
            do {
                rowID = try store?.append(
                    .init(
                        run: run,
                        requestID: report.requestID,
                        mode: report.mode.rawValue,
                        energySource: energySource,
                        powerMode: state.withLock { $0.context.powerMode }
                    )
                )
                done?(nil)
            } catch {
                storageFailed("store a report", error)
                done?("\(error)")
            }
            guard let settle else { return judge(run) }
            queue.asyncAfter(deadline: .now() + settle) { [self, rowID] in
                var run = run
                if let started = report.startedAt,
                    let joules = sampler?.energy(from: started, to: started + report.latencyS).map({ $0 * share })
                {
                    run.energyJ = joules
                    onAttributed?(joules)
                    if let rowID {
                        do { try store?.setEnergy(ofRun: rowID, joules: joules, source: "rails") } catch {
                            storageFailed("store a run's energy", error)
                        }
                    }
                }
                judge(run)
            }
        }
        return (true, attributed)
    }

    /// Takes a place in the backlog, or counts the work as dropped when too much is waiting.
    private func admit() -> Bool {
        backlog.withLock { backlog -> Bool in
            guard backlog.waiting < Self.maximumBacklog else {
                backlog.dropped += 1
                return false
            }
            backlog.waiting += 1
            return true
        }
    }

    /// Waits until every report handed over so far is stored and judged (before exiting, say).
    public func drain() { queue.sync {} }

    /// Periodic work: follow the power mode (a change starts new baselines) and refit when due.
    public func tick() {
        queue.async { [self] in
            let now = clock()
            let context = DeviceContext.read(SysfsRoot(options.sysfsRoot))
            let events = state.withLock { state -> [CalibrationLoop.Event] in
                state.context = context
                var events = state.loop.setContext(context.powerMode ?? "none", at: now)
                if now - state.lastRefit >= options.refitInterval {
                    state.lastRefit = now
                    events += state.loop.periodicRefit(at: now)
                }
                return events
            }
            handle(events, at: now)
            followFleet(at: now)
        }
    }

    /// Learns a newer fleet version when `fleet sync` has pulled one: the learner starts again from it and the
    /// robot's own stored outcomes (on the watchdog's queue).
    private func followFleet(at now: Double) {
        let due = state.withLock { state -> Bool in
            guard now - state.fleetChecked >= Self.fleetCheckInterval else { return false }
            state.fleetChecked = now
            return true
        }
        // Every 30 s the file's version is read; its pseudo-outcomes are made only when it is a new one.
        guard due,
            let prior = Self.fleetPrior(
                Self.fleetFile("fleet-version.json", beside: store),
                unless: state.withLock { $0.fleetVersion }
            )
        else { return }
        let own: [LearningOutcome]
        do { own = try store?.outcomes() ?? [] } catch {
            storageFailed("read the stored outcomes for the fleet version", error)
            return
        }
        service.relearn(prior.outcomes + own, fleetVersion: prior.version)
        state.withLock {
            $0.fleetVersion = prior.version
            $0.fleetOutcomes = prior.outcomes.count
            $0.fleetOwnRows = prior.ownRows
        }
        note("fleet version \(prior.version) learned")
        logger.notice(
            "fleet version learned as the prior",
            metadata: ["fleet_version": "\(prior.version)", "outcomes": "\(prior.outcomes.count)"]
        )
    }

    /// The fleet as the daemon sees it: the version learned and what `fleet sync` last said (its state file).
    public var fleetJSON: JSONValue {
        let (version, outcomes, ownRows) = state.withLock {
            ($0.fleetVersion, $0.fleetOutcomes, $0.fleetOwnRows)
        }
        let syncPath = Self.fleetFile("fleet-sync.json", beside: store)
        let sync = syncPath.flatMap { FileManager.default.contents(atPath: $0) }.flatMap {
            try? JSONValue.parse(Array($0))
        }
        guard version != nil || sync != nil else { return .null }
        return .fields([
            "version": version.map(JSONValue.int) ?? .null, "priorOutcomes": .int(outcomes),
            // What leaving this robot's own rows out changed in the version learned, kept when it was learned: the
            // version file (megabytes for a large fleet) is not read again for each Status or metrics write.
            "ownRows": ownRows,
            "sync": sync ?? .null,
        ])
    }

    /// After an operator reload: judge against the freshly loaded profile.
    public func reset(profile: ProfileSet, base: String) {
        let now = clock()
        state.withLock { state in
            state.loop = CalibrationLoop(profile: profile, at: now)
            state.base = base
        }
    }

    /// Writes `profile` as a new version and swaps it into the planner; a failure is counted as `what` failing.
    private func install(_ profile: ProfileSet, _ what: String) -> Bool {
        do {
            try versions?.write(profile, base: state.withLock { $0.base })
            try service.install(profile: profile)
            return true
        } catch {
            storageFailed(what, error)
            return false
        }
    }

    private func handle(_ events: [CalibrationLoop.Event], at now: Double) {
        for event in events {
            switch event {
            case let .recalibrated(id, outcome, profile):
                let old = service.planner.profile.variants[id]
                guard install(profile, "install the recalibration of \(id)") else { continue }
                if let old {
                    try? store?.recordCalibration(outcome, old: old, profileVersion: profile.version, at: now)
                }
                state.withLock { $0.installed += 1 }
                service.events.publish(.recalibration) {
                    .fields([
                        "model": .string(id.model), "quantization": .string(id.quantization.rawValue),
                        "reason": .string(outcome.reason),
                        "oldNsPerToken": old.map { .number($0.decodeLatency.nSPerToken) } ?? .null,
                        "newNsPerToken": .number(outcome.candidate.decodeLatency.nSPerToken),
                        "oldMapePct": .number(outcome.currentLatencyMAPE),
                        "newMapePct": .number(outcome.candidateLatencyMAPE),
                        "profileVersion": .string(profile.version),
                    ])
                }
                note("recalibrated \(id): \(outcome.reason)")
                logger.notice(
                    "profile recalibrated",
                    metadata: [
                        "MESSAGE_ID": "\(Self.recalibratedMessageID)", "model": "\(id.model)",
                        "quant": "\(id.quantization.rawValue)",
                        "old_n_s_per_token": "\(old?.decodeLatency.nSPerToken.significantDigits(6) ?? "")",
                        "new_n_s_per_token": "\(outcome.candidate.decodeLatency.nSPerToken.significantDigits(6))",
                        "old_m_s_per_token2": "\(old?.decodeLatency.mSPerToken2.significantDigits(6) ?? "")",
                        "new_m_s_per_token2": "\(outcome.candidate.decodeLatency.mSPerToken2.significantDigits(6))",
                        "old_mape_pct": "\(outcome.currentLatencyMAPE.significantDigits(4))",
                        "new_mape_pct": "\(outcome.candidateLatencyMAPE.significantDigits(4))",
                        "profile_version": "\(profile.version)", "reason": "\(outcome.reason)",
                    ]
                )
            case let .rolledBack(id, peer, reason, profile):
                guard install(profile, "roll back the recalibration of \(id)") else { continue }
                state.withLock { $0.rolledBack += 1 }
                service.events.publish(.rollback) {
                    .fields([
                        "model": .string(id.model), "quantization": .string(id.quantization.rawValue),
                        "peer": peer.map { .int(Int($0)) } ?? .null,
                        "reason": .string(reason), "profileVersion": .string(profile.version),
                    ])
                }
                note("rolled back \(id): \(reason)")
                logger.warning(
                    "recalibration rolled back: other peers' runs disagree",
                    metadata: [
                        "MESSAGE_ID": "\(Self.rolledBackMessageID)", "model": "\(id.model)",
                        "quant": "\(id.quantization.rawValue)",
                        "peer_uid": "\(peer.map(String.init) ?? "")", "reason": "\(reason)",
                        "profile_version": "\(profile.version)",
                    ]
                )
            case let .refitRejected(id, outcome):
                if let old = service.planner.profile.variants[id] {
                    try? store?.recordCalibration(
                        outcome,
                        old: old,
                        profileVersion: service.planner.profile.version,
                        at: now
                    )
                }
                note("kept \(id): \(outcome.reason)")
                logger.info(
                    "refit not accepted",
                    metadata: [
                        "model": "\(id.model)", "quant": "\(id.quantization.rawValue)", "reason": "\(outcome.reason)",
                    ]
                )
            case let .drift(id, ratio, after):
                note("drift on \(id): x\(ratio.significantDigits(3)) after \(after) reports")
                service.events.publish(.drift) {
                    .fields([
                        "model": .string(id.model), "quantization": .string(id.quantization.rawValue),
                        "ratio": .number(ratio), "detectedAfterReports": .int(after),
                    ])
                }
                logger.warning(
                    "drift detected",
                    metadata: [
                        "MESSAGE_ID": "\(Self.driftMessageID)", "model": "\(id.model)",
                        "quant": "\(id.quantization.rawValue)",
                        "ratio": "\(ratio.significantDigits(4))", "detected_after_reports": "\(after)",
                    ]
                )
            case let .contextChanged(from, to):
                note("power mode \(from ?? "?") -> \(to): new baseline")
                logger.notice(
                    "power mode changed, calibration starts a new baseline",
                    metadata: ["from": "\(from ?? "")", "to": "\(to)"]
                )
            case let .baselineComplete(id):
                logger.info(
                    "baseline complete",
                    metadata: ["model": "\(id.model)", "quant": "\(id.quantization.rawValue)"]
                )
            }
        }
    }

    private func note(_ text: String) { state.withLock { $0.lastEvent = text } }

    /// One line for sd_notify STATUS.
    public var summary: String {
        let now = clock()
        return state.withLock { state in
            let drifting = state.loop.monitors.values.filter { $0.state == .drifting }.count
            let age = state.loop.monitors.values.map { $0.calibrationAge(at: now) }.min()
            var line = "calibration: \(state.installed) recalibrations"
            if let age { line += ", age \(Int(age)) s" }
            if drifting > 0 { line += ", \(drifting) drifting" }
            return line
        }
    }

    /// The `calibration` object of `Status()`.
    public var statusJSON: JSONValue {
        let now = clock()
        // Counted outside the lock: the store is disk, the lock is shared with report handling.
        let stored = store.map { (try? $0.count()) ?? -1 }
        let waiting = backlog.withLock { $0 }
        return state.withLock { state in
            var fields: [(String, JSONValue)] = [
                ("recalibrations", .int(state.installed)),
                ("rolledBack", .int(state.rolledBack)),
                ("powerMode", state.context.powerMode.map(JSONValue.string) ?? .null),
                ("context", .string(state.context.summary)),
                ("lastEvent", state.lastEvent.map(JSONValue.string) ?? .null),
                (
                    "variants",
                    .array(
                        state.loop.monitors.sorted { $0.key < $1.key }.map { id, monitor in
                            .fields([
                                "variant": .string(id.description), "state": .string(monitor.state.rawValue),
                                "calibrationAgeS": .number(monitor.calibrationAge(at: now)),
                                "meanAbsErrorPct": .number(monitor.meanAbsoluteError * 100),
                                "biasPct": .number(monitor.bias * 100), "reports": .int(monitor.reports),
                                "implausibleReports": .int(monitor.implausible),
                            ])
                        }
                    )
                ),
            ]
            if let sampler {
                let status = sampler.status
                fields.append(
                    (
                        "rails",
                        .fields([
                            "source": .string(sampler.source.description), "samples": .int(status.samples),
                            "failures": .int(status.failures),
                            "totalW": status.latest.map { .number($0.totalW) } ?? .null,
                            "lastError": status.lastError.map(JSONValue.string) ?? .null,
                        ])
                    )
                )
            }
            if let stored { fields.append(("storedReports", .int(stored))) }
            if let aside = store?.movedAside { fields.append(("storeMovedAside", .string(aside))) }
            let failures = storageFailures.withLock { $0 }
            fields.append(("storageFailures", .int(failures.count)))
            fields.append(("lastStorageError", failures.last.map(JSONValue.string) ?? .null))
            fields.append(("pendingReports", .int(waiting.waiting)))
            fields.append(("droppedReports", .int(waiting.dropped)))
            return .object(fields)
        }
    }
}
