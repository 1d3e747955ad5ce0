import Foundation

/// The watchdog's decisions, free of I/O: feeds reported runs to a ``DriftMonitor`` per model variant,
/// keeps a bounded window of runs, and refits a variant when it drifts or when a periodic refit is due.
///
/// The daemon wraps this with storage, power rails and the profile swap; tests and what-if replays drive
/// it directly with any clock.
public struct CalibrationLoop: Sendable {
    public enum Event: Sendable {
        case baselineComplete(VariantID)
        case drift(VariantID, ratio: Double, detectedAfterReports: Int)
        case contextChanged(from: String?, to: String)
        /// A refit was accepted: `profile` is the new snapshot to swap in.
        case recalibrated(VariantID, Recalibrator.Outcome, profile: ProfileSet)
        /// A refit was tried and the current profile kept.
        case refitRejected(VariantID, Recalibrator.Outcome)
        /// Other peers' runs disagreed with a recalibration that `peer`'s runs dominated: the variants it changed
        /// are back as they were, and that peer's runs have left the window. `profile` is the snapshot to swap in.
        case rolledBack(VariantID, peer: UInt32?, reason: String, profile: ProfileSet)
    }

    public private(set) var profile: ProfileSet
    public private(set) var recalibrations = 0
    /// The device context (power mode) the current baselines belong to.
    public private(set) var context: String?
    public var recalibrator = Recalibrator()
    /// Runs kept per variant for refitting.
    public var window: Int
    /// A drift larger than this (relative) in one variant is carried over to the others.
    public var propagationThreshold = 0.1
    /// The least time between two refits of one variant.
    public var minimumRefitIntervalS = 30.0
    /// What one reporting peer may weigh in a refit.
    public var peerEvidence = PeerEvidence()
    /// Runs from peers other than the one that dominated a recalibration that confirm it or roll it back.
    public var probationRuns = 8
    /// A recalibration is rolled back when other peers' median error under it exceeds both this (relative)
    /// and twice their error under the profile it replaced.
    public var rollbackError = 0.1
    private let startedAt: Double

    /// A recalibration that other peers have not yet confirmed.
    private struct Probation {
        /// The peer whose runs dominated the fit.
        var fitPeer: UInt32?
        /// Each variant the recalibration changed: as installed and as it was before.
        var changes: [(installed: ModelVariant, previous: ModelVariant)]
        /// Other peers' absolute log errors under the new and the previous variant.
        var newErrors: [Double] = []
        var previousErrors: [Double] = []
    }

    /// What the loop keeps per variant: one record, so a report looks its variant up once.
    private struct VariantState {
        var monitor: DriftMonitor?
        /// Runs kept for refitting (up to half a window over `window`, trimmed in batches).
        var runs: [RunReport] = []
        /// Index into `runs` from which a pending (post-drift) refit draws.
        var pendingFrom: Int?
        /// Runs reported since the last refit.
        var newRuns = 0
        /// When the variant was last refitted.
        var lastRefit: Double?
        /// The last recalibration, until other peers' runs confirm it.
        var probation: Probation?
    }

    private var variants: [VariantID: VariantState] = [:]

    public init(profile: ProfileSet, at now: Double, window: Int = 2000) {
        self.profile = profile
        self.baseline = profile
        self.window = window
        self.startedAt = now
    }

    /// The profile as configured (measured at bring-up): a refit that only returns toward it applies at once.
    public let baseline: ProfileSet
    /// Peers, each with this many runs in a fit, that corroborate a faster device.
    public var corroboratingPeers = 2
    public var corroboratingRuns = 3

    /// Each variant's drift monitor.
    public var monitors: [VariantID: DriftMonitor] { variants.compactMapValues(\.monitor) }

    /// The variants whose drift has been detected and whose refit still waits for runs.
    public var pendingRefits: [VariantID] { variants.filter { $0.value.pendingFrom != nil }.keys.sorted() }

    /// Adds runs from before a restart to the refit window without judging them.
    public mutating func seed(_ earlier: [RunReport]) {
        for run in earlier where profile.variants[run.variant] != nil {
            variants[run.variant, default: VariantState()].runs.append(run)
        }
        for id in variants.keys where variants[id]!.runs.count > window {
            variants[id]!.runs.removeFirst(variants[id]!.runs.count - window)
        }
    }

    /// Feeds one reported run; returns what it set off (drift, a swap, nothing).
    public mutating func report(_ run: RunReport, at now: Double) -> [Event] {
        guard let variant = profile.variants[run.variant] else { return [] }
        var events: [Event] = []
        let predicted = Predictor(device: profile.device).latencyS(
            variant,
            input: run.inputTokens,
            output: Double(run.outputTokens),
            parallel: run.decodingSequences
        )
        var state = variants.removeValue(forKey: run.variant) ?? VariantState()
        defer { variants[run.variant] = state }
        var monitor = state.monitor ?? DriftMonitor(at: startedAt)
        if let context, monitor.context == nil { _ = monitor.setContext(context, at: now) }
        // The plausibility filter comes before any fit sees the run: an impossible run is counted and dropped.
        if monitor.plausibility.problem(
            variant,
            device: profile.device,
            outputTokens: run.outputTokens,
            latencyS: run.latencyS,
            predictedS: predicted
        ) != nil {
            monitor.recordImplausible()
            state.monitor = monitor
            return []
        }
        // Trimmed in batches (the window may run half over): the runs are not shifted on every report.
        state.runs.append(run)
        if state.runs.count > window + window / 2 {
            let excess = state.runs.count - window
            state.runs.removeFirst(excess)
            if let from = state.pendingFrom { state.pendingFrom = max(0, from - excess) }
        }
        state.newRuns += 1
        if let peer = run.peer, let probation = state.probation, peer != probation.fitPeer,
            let rollback = judgeProbation(&state, run: run, predicted: predicted, at: now)
        {
            state.monitor = monitor
            return [rollback]
        }
        switch monitor.observe(predicted: predicted, observed: run.latencyS, at: now) {
        case .baselineComplete?:
            events.append(.baselineComplete(run.variant))
        case let .drift(ratio, onset, alarm)?:
            events.append(.drift(run.variant, ratio: ratio, detectedAfterReports: alarm - onset + 1))
            // Only runs from the estimated onset on describe the device as it is now.
            state.pendingFrom = max(0, state.runs.count - 1 - (alarm - onset))
        default:
            break
        }
        state.monitor = monitor
        if let from = state.pendingFrom, state.runs.count - from >= recalibrator.minimumRuns {
            let sinceOnset = state.runs[from...]
            events += refit(run.variant, &state, runs: sinceOnset, at: now, label: "after drift")
        }
        return events
    }

    /// New runs a variant needs since its last refit (a tenth of the window, at least 20) before a periodic refit
    /// looks at it again: refitting nearly the same
    /// runs can only confirm the last fit, or be accepted by a hair and churn the profile.
    public var minimumNewRunsForPeriodicRefit: Int { max(20, recalibrator.minimumRuns / 4, window / 10) }

    /// Refits every variant with enough runs, and enough new ones since its last refit (the periodic recalibration).
    public mutating func periodicRefit(at now: Double) -> [Event] {
        var events: [Event] = []
        let due = variants.compactMap { id, state in
            state.runs.count >= recalibrator.minimumRuns && state.pendingFrom == nil
                && state.newRuns >= minimumNewRunsForPeriodicRefit ? id : nil
        }
        for id in due.sorted() {
            var state = variants.removeValue(forKey: id)!
            let recent = state.runs.suffix(window)
            events += refit(id, &state, runs: recent, at: now, label: "periodic")
            variants[id] = state
        }
        return events
    }

    /// Records the device context (power mode); a change drops every run and starts new baselines.
    public mutating func setContext(_ value: String, at now: Double) -> [Event] {
        guard value != context else { return [] }
        let previous = context
        context = value
        for id in variants.keys.sorted() { _ = variants[id]!.monitor?.setContext(value, at: now) }
        guard previous != nil else { return [] }
        for id in variants.keys {
            variants[id]!.runs.removeAll()
            variants[id]!.pendingFrom = nil
        }
        return [.contextChanged(from: previous, to: value)]
    }

    /// Believes a faster device only within what was measured: a candidate faster than the configured profile (the
    /// bring-up measurement), fitted to runs that fewer than `corroboratingPeers` peers reported, is held to it. A
    /// device returning from a slowdown gets back to the configured profile at once; one faster than ever measured
    /// waits for a second peer's runs or a new bring-up. A slower device is believed at once.
    private func boundOptimism(
        _ id: VariantID,
        _ outcome: inout Recalibrator.Outcome,
        current: ModelVariant,
        runs: ArraySlice<RunReport>
    ) {
        let configured = baseline.variants[id]?.decodeLatency.nSPerToken ?? current.decodeLatency.nSPerToken
        let wanted = outcome.candidate.decodeLatency.nSPerToken
        guard wanted < configured else { return }
        var byPeer: [UInt32?: Int] = [:]
        for run in runs { byPeer[run.peer, default: 0] += 1 }
        if byPeer.filter({ $0.key != nil && $0.value >= corroboratingRuns }).count >= corroboratingPeers { return }
        let claim =
            "the runs say \(((1 - wanted / configured) * 100).significantDigits(3)) % faster than the configured profile, from one peer"
        guard current.decodeLatency.nSPerToken > configured else {
            outcome.accepted = false
            outcome.reason =
                "held back: \(claim); a faster device than measured needs a second peer's runs or a new bring-up"
            return
        }
        let scale = configured / wanted
        outcome.candidate.decodeLatency = DecodeLatencyModel(
            mSPerToken2: outcome.candidate.decodeLatency.mSPerToken2 * scale,
            nSPerToken: configured,
            source: outcome.candidate.decodeLatency.source + " (held to the configured decode time: one peer's runs)"
        )
        outcome.reason += "; held back to the configured profile: \(claim)"
    }

    /// Adds a run from another peer to a recalibration's probation; rolls the recalibration back when those
    /// peers' runs fit the previous variant markedly better.
    private mutating func judgeProbation(
        _ state: inout VariantState,
        run: RunReport,
        predicted: Double,
        at now: Double
    ) -> Event? {
        guard var probation = state.probation,
            let previous = probation.changes.first(where: { $0.installed.id == run.variant })?.previous
        else { return nil }
        let before = Predictor(device: profile.device).latencyS(
            previous,
            input: run.inputTokens,
            output: Double(run.outputTokens),
            parallel: run.decodingSequences
        )
        probation.newErrors.append(abs(log(run.latencyS / predicted)))
        probation.previousErrors.append(abs(log(run.latencyS / before)))
        guard probation.newErrors.count >= probationRuns else {
            state.probation = probation
            return nil
        }
        state.probation = nil
        let underNew = RobustRegression.median(probation.newErrors)
        let underPrevious = RobustRegression.median(probation.previousErrors)
        guard underNew > log(1 + rollbackError) && underNew > 2 * underPrevious else { return nil }
        // Undo only what is still as the recalibration left it.
        for change in probation.changes where profile.variants[change.installed.id] == change.installed {
            profile = profile.replacing(change.previous)
        }
        state.runs.removeAll { $0.peer == probation.fitPeer }
        state.pendingFrom = nil
        state.monitor?.recalibrated(at: now)
        let who = probation.fitPeer.map { "peer \($0)" } ?? "unknown peers"
        let reason =
            "\(probationRuns) runs of other peers err by \(((exp(underNew) - 1) * 100).significantDigits(3)) % (median) under the fit \(who) dominated, \(((exp(underPrevious) - 1) * 100).significantDigits(3)) % under the previous profile"
        return .rolledBack(run.variant, peer: probation.fitPeer, reason: reason, profile: profile)
    }

    /// Refits one variant, whose state the caller has taken out of `variants` (so it is not copied).
    private mutating func refit(
        _ id: VariantID,
        _ state: inout VariantState,
        runs: ArraySlice<RunReport>,
        at now: Double,
        label: String
    ) -> [Event] {
        // Rate limit: a flood of reports cannot make the profile churn.
        if let last = state.lastRefit, now - last < minimumRefitIntervalS { return [] }
        state.lastRefit = now
        state.newRuns = 0
        // No one peer outvotes the rest, and a fit must not pull away from any peer's own runs.
        let runs = peerEvidence.capped(runs)
        guard let variant = profile.variants[id],
            var outcome = try? recalibrator.refit(variant, device: profile.device, runs: runs, at: now, label: label)
        else { return [] }
        if outcome.accepted,
            let disagreement = peerEvidence.disagreement(
                current: variant,
                candidate: outcome.candidate,
                device: profile.device,
                runs: runs
            )
        {
            outcome.accepted = false
            outcome.reason = "kept: \(disagreement)"
        }
        if outcome.accepted { boundOptimism(id, &outcome, current: variant, runs: runs) }
        let afterDrift = state.pendingFrom != nil
        state.pendingFrom = nil
        guard outcome.accepted else {
            if afterDrift { state.monitor?.resume(at: now) }
            return [.refitRejected(id, outcome)]
        }
        var next = profile.replacing(outcome.candidate)
        var changes = [(installed: outcome.candidate, previous: variant)]
        // A device that slowed (throttling, a lower power mode) slows every model: carry the drift over to
        // variants that have not reported yet, until their own reports refit them.
        let ratio = outcome.candidate.decodeLatency.nSPerToken / variant.decodeLatency.nSPerToken
        if afterDrift, abs(ratio - 1) > propagationThreshold {
            for other in next.variants.values
            where other.id != id && (variants[other.id]?.monitor?.state ?? .baselining) != .drifting {
                var scaled = other
                scaled.decodeLatency = DecodeLatencyModel(
                    mSPerToken2: other.decodeLatency.mSPerToken2 * ratio,
                    nSPerToken: other.decodeLatency.nSPerToken * ratio,
                    source:
                        "scaled by \(ratio.significantDigits(4)) with the drift of \(id) (provisional); was: \(other.decodeLatency.source)"
                )
                next.variants[other.id] = scaled
                changes.append((installed: scaled, previous: other))
                variants[other.id]?.monitor?.resume(at: now)
            }
            next = next.replacing(next.variants[id]!)
        }
        profile = next
        recalibrations += 1
        state.monitor?.recalibrated(at: now)
        state.probation = Probation(fitPeer: PeerEvidence.dominant(runs), changes: changes)
        // Keep only the runs the new fit describes.
        state.runs = Array(runs)
        return [.recalibrated(id, outcome, profile: profile)]
    }
}
