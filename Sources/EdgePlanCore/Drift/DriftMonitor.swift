import Foundation

/// Watches reported latencies against the profile's predictions and decides when the profile has drifted.
///
/// A state machine with time passed in by the caller (seconds on any monotonic clock), so tests replay
/// streams at any speed:
/// - `baselining`: just started, or the power mode changed; collecting reports before judging;
/// - `calibrated`: predictions match; a CUSUM over `log(observed / predicted)` watches for shifts;
/// - `drifting`: a shift was detected; recalibration is due and ``recalibrated(at:)`` ends it.
public struct DriftMonitor: Sendable {
    public enum State: String, Sendable {
        case baselining
        case calibrated
        case drifting
    }

    public enum Event: Sendable, Equatable {
        /// Enough reports agree with the profile: watching starts.
        case baselineComplete
        /// Observed latency moved by `ratio` (observed over predicted) since report `onset`.
        case drift(ratio: Double, onsetReport: Int, alarmReport: Int)
        /// The context (power mode, say) changed: old reports no longer describe the device.
        case contextChanged(from: String?, to: String)
    }

    public private(set) var state: State = .baselining
    public private(set) var stateSince: Double
    public private(set) var lastCalibratedAt: Double
    /// Exponentially weighted mean absolute relative error of recent predictions.
    public private(set) var meanAbsoluteError = 0.0
    /// Exponentially weighted mean of `observed / predicted - 1`.
    public private(set) var bias = 0.0
    public private(set) var reports = 0
    public private(set) var context: String?
    /// Reports since the last baseline started; drift onsets are indices into this count.
    public private(set) var reportsSinceBaseline = 0
    public var baselineReports: Int
    public var smoothing: Double
    /// Reports whose ratio to the prediction is beyond `plausibility`'s bounds: counted, not judged.
    public private(set) var implausible = 0
    public var plausibility: Plausibility
    private var detector: ShiftDetector
    private var detectorOrigin = 0

    public init(
        at now: Double,
        baselineReports: Int = 8,
        smoothing: Double = 0.1,
        plausibility: Plausibility = Plausibility(),
        detector: ShiftDetector = ShiftDetector(slack: 0.05, threshold: 1.5, clip: 0.5)
    ) {
        self.plausibility = plausibility
        self.stateSince = now
        self.lastCalibratedAt = now
        self.baselineReports = baselineReports
        self.smoothing = smoothing
        self.detector = detector
    }

    /// Seconds since the profile was last calibrated (or the monitor started).
    public func calibrationAge(at now: Double) -> Double { now - lastCalibratedAt }

    /// Feeds one report: what the profile predicted and what happened.
    /// Counts a report that a plausibility filter dropped before it reached the monitor.
    public mutating func recordImplausible() { implausible += 1 }

    public mutating func observe(predicted: Double, observed: Double, at now: Double) -> Event? {
        guard predicted > 0, observed > 0, predicted.isFinite, observed.isFinite else { return nil }
        guard observed / predicted <= plausibility.maxSlowdown, predicted / observed <= plausibility.maxSpeedup else {
            implausible += 1
            return nil
        }
        reports += 1
        reportsSinceBaseline += 1
        let relative = observed / predicted - 1
        meanAbsoluteError += smoothing * (Swift.abs(relative) - meanAbsoluteError)
        bias += smoothing * (relative - bias)
        let logRatio = Foundation.log(observed / predicted)
        switch state {
        case .baselining:
            if reportsSinceBaseline >= baselineReports {
                resetDetector()
                transition(to: .calibrated, at: now)
                return .baselineComplete
            }
            return nil
        case .calibrated:
            guard let shift = detector.add(logRatio) else { return nil }
            transition(to: .drifting, at: now)
            let origin = detectorOrigin
            resetDetector()
            return .drift(
                ratio: Foundation.exp(shift.meanLogRatio),
                onsetReport: origin + shift.onset,
                alarmReport: origin + shift.alarm
            )
        case .drifting:
            return nil
        }
    }

    /// A new profile was swapped in: predictions start afresh.
    public mutating func recalibrated(at now: Double) {
        lastCalibratedAt = now
        meanAbsoluteError = 0
        bias = 0
        reportsSinceBaseline = 0
        resetDetector()
        transition(to: .calibrated, at: now)
    }

    /// A drift alarm that the refit did not confirm: back to watching, calibration age unchanged.
    public mutating func resume(at now: Double) {
        resetDetector()
        transition(to: .calibrated, at: now)
    }

    /// Records the device context (the nvpmodel mode, say); a change starts a new baseline at once.
    public mutating func setContext(_ value: String, at now: Double) -> Event? {
        defer { context = value }
        guard let previous = context, previous != value else { return nil }
        reportsSinceBaseline = 0
        resetDetector()
        meanAbsoluteError = 0
        bias = 0
        transition(to: .baselining, at: now)
        return .contextChanged(from: previous, to: value)
    }

    private mutating func resetDetector() {
        detector.reset()
        detectorOrigin = reportsSinceBaseline
    }

    private mutating func transition(to next: State, at now: Double) {
        if next != state { stateSince = now }
        state = next
    }
}
