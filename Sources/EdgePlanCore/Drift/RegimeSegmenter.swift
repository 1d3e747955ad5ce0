import Foundation

/// Splits a series of positive values (per-token decode times, say) into regimes of steady level.
///
/// It learns a baseline from the first `warmup` samples of each regime (their median), then feeds
/// `log(value / baseline)` to a ``ShiftDetector``; the baseline follows slow movement within a regime.
/// An alarm closes the regime at the shift's estimated onset and starts learning the next.
public struct RegimeSegmenter: Sendable {
    /// One regime: samples `start..<end` of the series, and their median.
    public struct Segment: Sendable, Equatable {
        public var start: Int
        public var end: Int
        public var median: Double
        public var count: Int { end - start }
    }

    /// A detected change: where the new regime started (estimated) and the sample that raised the alarm.
    public struct Change: Sendable, Equatable {
        public var onset: Int
        public var alarm: Int
        /// Samples from the onset to the alarm: how long the change went unnoticed.
        public var delay: Int { alarm - onset }
        public var ratio: Double
    }

    public var warmup: Int
    public var tracking: Double
    public var detector: ShiftDetector

    public init(warmup: Int = 16, tracking: Double = 0.01, detector: ShiftDetector = ShiftDetector()) {
        self.warmup = warmup
        self.tracking = tracking
        self.detector = detector
    }

    /// The regimes of `values` and the changes between them, found online (one pass, no look-ahead
    /// beyond the detector's own onset estimate).
    public func segment(_ values: [Double]) -> (segments: [Segment], changes: [Change]) {
        var detector = self.detector
        var boundaries = [0]
        var changes: [Change] = []
        var learning: [Double] = []
        var baseline: Double?
        var regimeStart = 0
        var fedFrom = 0
        for (index, value) in values.enumerated() where value > 0 && value.isFinite {
            guard let level = baseline else {
                learning.append(value)
                if learning.count >= warmup {
                    baseline = RobustRegression.median(learning)
                    detector.reset()
                    fedFrom = index + 1
                }
                continue
            }
            if let shift = detector.add(Foundation.log(value / level)) {
                let onset = max(fedFrom + shift.onset, regimeStart + 1)
                changes.append(Change(onset: onset, alarm: index, ratio: Foundation.exp(shift.meanLogRatio)))
                boundaries.append(onset)
                regimeStart = onset
                // Learn the new level from the samples since the onset.
                learning = Array(values[onset...index].filter { $0 > 0 && $0.isFinite })
                baseline = nil
                if learning.count >= warmup {
                    baseline = RobustRegression.median(learning)
                    detector.reset()
                    fedFrom = index + 1
                }
            } else {
                baseline = level + tracking * (value - level)
            }
        }
        boundaries.append(values.count)
        let segments = zip(boundaries, boundaries.dropFirst()).filter { $0 < $1 }.map { start, end in
            Segment(start: start, end: end, median: RobustRegression.median(Array(values[start..<end])))
        }
        return (segments, changes)
    }
}
