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
    }

    public private(set) var profile: ProfileSet
    public private(set) var monitors: [VariantID: DriftMonitor] = [:]
    public private(set) var recalibrations = 0
    /// The device context (power mode) the current baselines belong to.
    public private(set) var context: String?
    public var recalibrator = Recalibrator()
    /// Runs kept per variant for refitting.
    public var window: Int
    /// A drift larger than this (relative) in one variant is carried over to the others.
    public var propagationThreshold = 0.1
    private var runs: [VariantID: [RunReport]] = [:]
    /// Per variant, the index into `runs` from which a pending (post-drift) refit draws.
    private var pendingFrom: [VariantID: Int] = [:]
    /// Runs reported per variant since its last refit.
    private var newRuns: [VariantID: Int] = [:]
    /// When each variant was last refitted, and the least time between two refits of one variant.
    private var lastRefit: [VariantID: Double] = [:]
    public var minimumRefitIntervalS = 30.0
    private let startedAt: Double

    public init(profile: ProfileSet, at now: Double, window: Int = 2000) {
        self.profile = profile
        self.window = window
        self.startedAt = now
    }

    /// The variants whose drift has been detected and whose refit still waits for runs.
    public var pendingRefits: [VariantID] { pendingFrom.keys.sorted() }

    /// Adds runs from before a restart to the refit window without judging them.
    public mutating func seed(_ earlier: [RunReport]) {
        for run in earlier where profile.variants[run.variant] != nil {
            runs[run.variant, default: []].append(run)
        }
        for (id, list) in runs where list.count > window { runs[id] = Array(list.suffix(window)) }
    }

    /// Feeds one reported run; returns what it set off (drift, a swap, nothing).
    public mutating func report(_ run: RunReport, at now: Double) -> [Event] {
        guard let variant = profile.variants[run.variant] else { return [] }
        var events: [Event] = []
        let predicted = Predictor(device: profile.device).latencyS(variant, input: run.inputTokens, output: Double(run.outputTokens), parallel: run.parallel)
        var monitor = monitors[run.variant] ?? DriftMonitor(at: startedAt)
        if let context, monitor.context == nil { _ = monitor.setContext(context, at: now) }
        // The plausibility filter comes before any fit sees the run: beyond the monitor's ratio either way, or faster
        // than the device's memory bandwidth allows (the roofline), a run is counted and dropped.
        let ratio = run.latencyS / predicted
        let floorS = Roofline.decodeFloorSPerToken(variant, device: profile.device) * Double(run.outputTokens) * 0.8
        if !(ratio <= monitor.plausibleRatio && 1 / ratio <= monitor.plausibleRatio) || run.latencyS < floorS {
            monitor.recordImplausible()
            monitors[run.variant] = monitor
            return []
        }
        // In place, and trimmed in batches (the window may run half over): the runs are neither copied nor shifted
        // on every report.
        runs[run.variant, default: []].append(run)
        let count = runs[run.variant]!.count
        if count > window + window / 2 {
            let excess = count - window
            runs[run.variant]!.removeFirst(excess)
            if let from = pendingFrom[run.variant] { pendingFrom[run.variant] = max(0, from - excess) }
        }
        newRuns[run.variant, default: 0] += 1
        let list = runs[run.variant]!
        switch monitor.observe(predicted: predicted, observed: run.latencyS, at: now) {
        case .baselineComplete?:
            events.append(.baselineComplete(run.variant))
        case let .drift(ratio, onset, alarm)?:
            events.append(.drift(run.variant, ratio: ratio, detectedAfterReports: alarm - onset + 1))
            // Only runs from the estimated onset on describe the device as it is now.
            pendingFrom[run.variant] = max(0, list.count - 1 - (alarm - onset))
        default:
            break
        }
        monitors[run.variant] = monitor
        if let from = pendingFrom[run.variant], list.count - from >= recalibrator.minimumRuns {
            events += refit(run.variant, runs: Array(list[from...]), at: now, label: "after drift")
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
        let due = runs.compactMap { id, list in
            list.count >= recalibrator.minimumRuns && pendingFrom[id] == nil && (newRuns[id] ?? 0) >= minimumNewRunsForPeriodicRefit ? id : nil
        }
        for id in due.sorted() {
            events += refit(id, runs: Array(runs[id]!.suffix(window)), at: now, label: "periodic")
        }
        return events
    }

    /// Records the device context (power mode); a change drops every run and starts new baselines.
    public mutating func setContext(_ value: String, at now: Double) -> [Event] {
        guard value != context else { return [] }
        let previous = context
        context = value
        for id in monitors.keys.sorted() { _ = monitors[id]!.setContext(value, at: now) }
        guard previous != nil else { return [] }
        runs.removeAll()
        pendingFrom.removeAll()
        return [.contextChanged(from: previous, to: value)]
    }

    private mutating func refit(_ id: VariantID, runs: [RunReport], at now: Double, label: String) -> [Event] {
        // Rate limit: a flood of reports cannot make the profile churn.
        if let last = lastRefit[id], now - last < minimumRefitIntervalS { return [] }
        lastRefit[id] = now
        newRuns[id] = 0
        guard let variant = profile.variants[id],
              let outcome = try? recalibrator.refit(variant, device: profile.device, runs: runs, at: now, label: label)
        else { return [] }
        let afterDrift = pendingFrom.removeValue(forKey: id) != nil
        guard outcome.accepted else {
            if afterDrift { monitors[id]?.resume(at: now) }
            return [.refitRejected(id, outcome)]
        }
        var next = profile.replacing(outcome.candidate)
        // A device that slowed (throttling, a lower power mode) slows every model: carry the drift over to
        // variants that have not reported yet, until their own reports refit them.
        let ratio = outcome.candidate.decodeLatency.nSPerToken / variant.decodeLatency.nSPerToken
        if afterDrift, abs(ratio - 1) > propagationThreshold {
            for other in next.variants.values where other.id != id && (monitors[other.id]?.state ?? .baselining) != .drifting {
                var scaled = other
                scaled.decodeLatency = DecodeLatencyModel(
                    mSPerToken2: other.decodeLatency.mSPerToken2 * ratio, nSPerToken: other.decodeLatency.nSPerToken * ratio,
                    source: "scaled by \(ratio.significantDigits(4)) with the drift of \(id) (provisional); was: \(other.decodeLatency.source)")
                next.variants[other.id] = scaled
                monitors[other.id]?.resume(at: now)
            }
            next = next.replacing(next.variants[id]!)
        }
        profile = next
        recalibrations += 1
        monitors[id]?.recalibrated(at: now)
        // Keep only the runs the new fit describes.
        self.runs[id] = runs
        return [.recalibrated(id, outcome, profile: profile)]
    }
}
