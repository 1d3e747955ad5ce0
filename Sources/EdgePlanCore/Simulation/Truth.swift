import Foundation

/// The world a simulation runs in, kept apart from what the planner believes: true accuracies (shifted from the
/// tables per task class and model), true output lengths (the profile's heavy-tailed distributions, scaled),
/// timing noise, and scripted drift of the device.
public struct Truth: Sendable, Equatable {
    /// A task class × model whose true single-sample accuracy differs from the tables by `shiftPoints`.
    public struct AccuracyShift: Sendable, Equatable {
        public var taskClass: String
        public var model: String
        public var mode: LengthMode?
        public var shiftPoints: Double
    }

    public enum DriftKind: String, Sendable, Equatable, CaseIterable {
        /// Everything runs `factor` times slower from `at` on.
        case slowdown
        /// `factor` times slower during `duration`.
        case throttle
        /// A new power mode: `factor` times slower from `at` on, and the device reports the mode.
        case powerMode = "power-mode"
    }

    public struct Drift: Sendable, Equatable {
        public var atS: Double
        public var kind: DriftKind
        public var factor: Double
        public var durationS: Double?
        public var mode: String?
    }

    public var shifts: [AccuracyShift]
    /// True lengths are the profile's distributions times this.
    public var lengthScale: Double
    /// Relative standard deviation of each run's latency and energy around the truth.
    public var timingNoise: Double
    public var drift: [Drift]

    public init(shifts: [AccuracyShift] = [], lengthScale: Double = 1, timingNoise: Double = 0.03, drift: [Drift] = [])
    {
        self.shifts = shifts
        self.lengthScale = lengthScale
        self.timingNoise = timingNoise
        self.drift = drift.sorted { $0.atS < $1.atS }
    }

    /// How much slower than the profile the device runs at time `t`.
    public func slowdown(at t: Double) -> Double {
        var factor = 1.0
        for event in drift where event.atS <= t {
            switch event.kind {
            case .slowdown, .powerMode: factor *= event.factor
            case .throttle: if t < event.atS + (event.durationS ?? .infinity) { factor *= event.factor }
            }
        }
        return factor
    }

    /// The power mode the device reports at time `t`.
    public func powerMode(at t: Double) -> String {
        drift.last { $0.kind == .powerMode && $0.atS <= t }?.mode ?? "default"
    }

    /// Shift of the true single-sample accuracy, in points, for a class and configuration.
    public func shiftPoints(taskClass: String, configuration: Configuration) -> Double {
        shifts.filter {
            $0.taskClass == taskClass && $0.model == configuration.variant.model
                && ($0.mode == nil || $0.mode == configuration.mode)
        }
        .map(\.shiftPoints).reduce(0, +)
    }

    /// The profile as the device really is at a slowdown factor: every latency coefficient scaled.
    public static func scaled(_ profile: ProfileSet, by factor: Double) -> ProfileSet {
        guard factor != 1 else { return profile }
        var next = profile
        for (id, variant) in profile.variants {
            var slower = variant
            slower.decodeLatency.nSPerToken *= factor
            slower.decodeLatency.mSPerToken2 *= factor
            slower.prefillLatency.aSPerToken2 *= factor
            slower.prefillLatency.bSPerToken *= factor
            slower.prefillLatency.cS *= factor
            next.variants[id] = slower
        }
        next.version = "\(profile.version)-x\(factor.significantDigits(4))"
        return next
    }

    /// Reads a `kind: truth` YAML file.
    public static func decode(_ text: String, file: String) throws -> Truth {
        var root = try YAMLObject.parse(text, file: file)
        try root.expectKind("truth")
        var truth = Truth()
        truth.lengthScale = try root.optionalDouble("length_scale", in: 0.01...100) ?? 1
        truth.timingNoise = try root.optionalDouble("timing_noise", in: 0...1) ?? 0.03
        if root.has("accuracy") {
            for var row in try root.objects("accuracy") {
                let mode = try row.optionalString("mode")
                guard mode == nil || LengthMode(rawValue: mode!) != nil else {
                    throw row.error(
                        "mode",
                        "unknown mode '\(mode!)'; use \(LengthMode.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                truth.shifts.append(
                    AccuracyShift(
                        taskClass: try row.string("task"),
                        model: try row.string("model"),
                        mode: mode.flatMap(LengthMode.init(rawValue:)),
                        shiftPoints: try row.double("shift_points", in: -100...100)
                    )
                )
                try row.finish()
            }
        }
        var drift: [Drift] = []
        if root.has("drift") {
            for var row in try root.objects("drift") {
                let rawKind = try row.string("kind")
                guard let kind = DriftKind(rawValue: rawKind) else {
                    throw row.error(
                        "kind",
                        "unknown drift '\(rawKind)'; use \(DriftKind.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                func duration(_ key: String, required: Bool) throws -> Double? {
                    guard let raw = try row.optionalString(key) else {
                        if required { throw row.error(key, "missing '\(key)' (a duration with a unit, e.g. 12h)") }
                        return nil
                    }
                    do {
                        return try QuantityParser.seconds(raw, field: key, requireUnit: true, allowZero: key == "at")
                    } catch let error as EdgePlanError {
                        throw row.error(key, error.message)
                    }
                }
                let event = Drift(
                    atS: try duration("at", required: true)!,
                    kind: kind,
                    factor: try row.double("factor", in: 0.1...10),
                    durationS: try duration("duration", required: kind == .throttle),
                    mode: try row.optionalString("mode")
                )
                if kind == .powerMode && event.mode == nil {
                    throw row.error("mode", "a power-mode change names the new mode")
                }
                drift.append(event)
                try row.finish()
            }
        }
        truth.drift = drift.sorted { $0.atS < $1.atS }
        try root.finish()
        return truth
    }
}
