/// Two-sided CUSUM over a stream of log-ratios (observed over expected): raises an alarm when their mean
/// moves away from zero by more than `slack` for long enough to accumulate `threshold`.
///
/// Each input is clipped to `±clip` so a single absurd sample cannot raise an alarm on its own. The onset
/// of a shift is estimated, as usual for CUSUM, as the sample after the statistic last stood at zero.
public struct ShiftDetector: Sendable, Equatable {
    public struct Shift: Sendable, Equatable {
        /// +1 when observations became slower or larger than expected, -1 when smaller.
        public var direction: Int
        /// Index (in samples fed since the last reset) of the estimated start of the shift.
        public var onset: Int
        /// Index of the sample that raised the alarm.
        public var alarm: Int
        /// Mean log-ratio from the onset to the alarm.
        public var meanLogRatio: Double
    }

    public var slack: Double
    public var threshold: Double
    public var clip: Double
    private(set) var upper = 0.0
    private(set) var lower = 0.0
    private var upperStart = 0
    private var lowerStart = 0
    private var upperSum = 0.0
    private var lowerSum = 0.0
    public private(set) var count = 0

    /// Defaults: ignore shifts under about 10 %, alarm after a 30 % shift lasts about 20 samples or a 3x shift 5.
    public init(slack: Double = 0.1, threshold: Double = 4, clip: Double = 1.5) {
        self.slack = slack
        self.threshold = threshold
        self.clip = clip
    }

    /// Feeds one log-ratio; returns the shift when this sample raises the alarm (the detector then resets).
    public mutating func add(_ logRatio: Double) -> Shift? {
        guard logRatio.isFinite else { return nil }
        let x = min(max(logRatio, -clip), clip)
        let index = count
        count += 1
        if upper == 0 {
            upperStart = index
            upperSum = 0
        }
        if lower == 0 {
            lowerStart = index
            lowerSum = 0
        }
        upper = max(0, upper + x - slack)
        lower = max(0, lower - x - slack)
        upperSum += x
        lowerSum += x
        if upper > threshold {
            let shift = Shift(
                direction: 1,
                onset: upperStart,
                alarm: index,
                meanLogRatio: upperSum / Double(index - upperStart + 1)
            )
            reset()
            return shift
        }
        if lower > threshold {
            let shift = Shift(
                direction: -1,
                onset: lowerStart,
                alarm: index,
                meanLogRatio: lowerSum / Double(index - lowerStart + 1)
            )
            reset()
            return shift
        }
        return nil
    }

    /// Clears the statistics and the sample count.
    public mutating func reset() {
        upper = 0
        lower = 0
        count = 0
    }
}
