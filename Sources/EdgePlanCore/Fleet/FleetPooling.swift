import Foundation

/// What a fleet learns from its robots, pooled robustly and bounded per robot.
///
/// - Calibrations: per device class and model variant, each robot's median ratio of measured to predicted latency
///   (its robot effect); a robot whose effect differs from the class median by more than a threshold is flagged and
///   left out; the pooled ratio is the median of the others.
/// - Accuracy: per task class and model-and-mode group, single-sample successes and trials, each robot's evidence
///   capped; no one robot moves a pooled accuracy by more than `maxInfluence` (the bound a lone peer has on a
///   robot's own learner), whichever way.
public enum FleetPooling {
    public struct Tally: Sendable, Equatable {
        public var robot: String
        public var taskClass: String
        public var model: String
        public var quantization: String
        public var mode: String
        public var budgetTokens: Int?
        public var capped: Bool
        public var parallel: Int
        public var successes: Int
        public var trials: Int

        public init(
            robot: String,
            taskClass: String,
            model: String,
            quantization: String,
            mode: String,
            budgetTokens: Int? = nil,
            capped: Bool = false,
            parallel: Int = 1,
            successes: Int,
            trials: Int
        ) {
            self.robot = robot
            self.taskClass = taskClass
            self.model = model
            self.quantization = quantization
            self.mode = mode
            self.budgetTokens = budgetTokens
            self.capped = capped
            self.parallel = parallel
            self.successes = successes
            self.trials = trials
        }
    }

    public struct Options: Sendable, Equatable {
        /// A robot whose latency ratio differs from its class's median by more than this share is flagged.
        public var flagThreshold = 0.10
        /// Runs a robot needs in a variant before its effect counts.
        public var minRuns = 5
        /// Outcomes one robot contributes per group at most (as a peer on one robot: `max_evidence_per_peer`).
        public var maxEvidencePerRobot = 400
        /// The most one robot moves a pooled accuracy, either way (a lone peer's optimism bound on one robot).
        public var maxInfluence = 0.05

        public init() {}
    }

    public struct Calibration: Sendable, Equatable {
        public var deviceClass: String
        public var model: String
        public var quantization: String
        /// Measured over predicted latency, pooled over the robots that agree.
        public var ratio: Double
        public var pooledRobots: Int
        public var runs: Int
        /// Each robot's own ratio over the pooled one.
        public var effects: [String: Double]
        public var flagged: [String]
    }

    public struct Accuracy: Sendable, Equatable {
        public var taskClass: String
        public var model: String
        public var quantization: String
        public var mode: String
        public var budgetTokens: Int?
        public var capped: Bool
        public var parallel: Int
        public var accuracy: Double
        /// The evidence behind it, after each robot's cap.
        public var trials: Double
        public var robots: Int
        /// Robots whose influence was bounded, with how far they would have moved the figure.
        public var bounded: [String: Double]
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// One robot's summary of one variant: the median of its runs' measured over predicted latency.
    public struct RobotRatio: Sendable, Equatable {
        public var robot: String
        public var deviceClass: String
        public var model: String
        public var quantization: String
        public var medianRatio: Double
        public var runs: Int

        public init(
            robot: String,
            deviceClass: String,
            model: String,
            quantization: String,
            medianRatio: Double,
            runs: Int
        ) {
            self.robot = robot
            self.deviceClass = deviceClass
            self.model = model
            self.quantization = quantization
            self.medianRatio = medianRatio
            self.runs = runs
        }
    }

    /// Pools per-robot medians (what PostgreSQL computes for a large fleet, so that no run leaves the server).
    public static func calibrations(_ robots: [RobotRatio], options: Options = Options()) -> [Calibration] {
        struct Key: Hashable, Comparable {
            var deviceClass: String
            var model: String
            var quantization: String
            static func < (a: Key, b: Key) -> Bool {
                (a.deviceClass, a.model, a.quantization) < (b.deviceClass, b.model, b.quantization)
            }
        }
        var byVariant: [Key: [RobotRatio]] = [:]
        for robot in robots where robot.runs >= options.minRuns && robot.medianRatio.isFinite && robot.medianRatio > 0 {
            byVariant[
                Key(deviceClass: robot.deviceClass, model: robot.model, quantization: robot.quantization),
                default: []
            ]
            .append(robot)
        }
        return byVariant.keys.sorted().map { key in
            let members = byVariant[key]!
            let own = Dictionary(members.map { ($0.robot, $0.medianRatio) }, uniquingKeysWith: { first, _ in first })
            let center = median(Array(own.values))
            let flagged = own.filter { abs($0.value / center - 1) > options.flagThreshold }.keys.sorted()
            let agreeing = members.filter { !flagged.contains($0.robot) }
            let pooled = agreeing.isEmpty ? center : median(agreeing.map(\.medianRatio))
            return Calibration(
                deviceClass: key.deviceClass,
                model: key.model,
                quantization: key.quantization,
                ratio: pooled,
                pooledRobots: agreeing.count,
                runs: agreeing.reduce(0) { $0 + $1.runs },
                effects: own.mapValues { $0 / pooled },
                flagged: flagged
            )
        }
    }

    /// Pools accuracy evidence; `excluded` robots (flagged ones) are left out.
    public static func accuracy(
        _ tallies: [Tally],
        options: Options = Options(),
        excluded: Set<String> = []
    ) -> [Accuracy] {
        struct Key: Hashable, Comparable {
            var task: String
            var model: String
            var quantization: String
            var mode: String
            var budget: Int
            var capped: Bool
            var parallel: Int
            static func < (a: Key, b: Key) -> Bool {
                if (a.task, a.model, a.quantization, a.mode) != (b.task, b.model, b.quantization, b.mode) {
                    return (a.task, a.model, a.quantization, a.mode) < (b.task, b.model, b.quantization, b.mode)
                }
                return (a.budget, a.capped ? 1 : 0, a.parallel) < (b.budget, b.capped ? 1 : 0, b.parallel)
            }
        }
        var groups: [Key: [String: (Double, Double)]] = [:]
        for tally in tallies where !excluded.contains(tally.robot) && tally.trials > 0 {
            // A robot's evidence counts up to the cap: a busy or lying robot cannot outweigh the rest by volume.
            let scale = min(1, Double(options.maxEvidencePerRobot) / Double(tally.trials))
            let key = Key(
                task: tally.taskClass,
                model: tally.model,
                quantization: tally.quantization,
                mode: tally.mode,
                budget: tally.budgetTokens ?? -1,
                capped: tally.capped,
                parallel: tally.parallel
            )
            let current = groups[key, default: [:]][tally.robot] ?? (0, 0)
            groups[key, default: [:]][tally.robot] = (
                current.0 + Double(tally.successes) * scale, current.1 + Double(tally.trials) * scale
            )
        }
        return groups.keys.sorted().map { key in
            let robots = groups[key]!
            let successes = robots.values.reduce(0) { $0 + $1.0 }
            let trials = robots.values.reduce(0) { $0 + $1.1 }
            var accuracy = successes / trials
            var bounded: [String: Double] = [:]
            // No one robot moves the figure by more than maxInfluence: the others' figure, plus at most that.
            if robots.count > 1 {
                for (robot, own) in robots.sorted(by: { $0.key < $1.key }) {
                    let without = (successes - own.0) / (trials - own.1)
                    let influence = accuracy - without
                    if abs(influence) > options.maxInfluence {
                        bounded[robot] = influence
                        accuracy = without + (influence > 0 ? options.maxInfluence : -options.maxInfluence)
                    }
                }
            }
            return Accuracy(
                taskClass: key.task,
                model: key.model,
                quantization: key.quantization,
                mode: key.mode,
                budgetTokens: key.budget < 0 ? nil : key.budget,
                capped: key.capped,
                parallel: key.parallel,
                accuracy: accuracy,
                trials: trials,
                robots: robots.count,
                bounded: bounded
            )
        }
    }

    /// The version's body as JSON: calibrations, accuracy and the flagged robots.
    public static func body(calibrations: [Calibration], accuracy: [Accuracy]) -> JSONValue {
        .fields([
            "calibrations": .array(
                calibrations.map { calibration in
                    .fields([
                        "deviceClass": .string(calibration.deviceClass), "model": .string(calibration.model),
                        "quantization": .string(calibration.quantization), "latencyRatio": .number(calibration.ratio),
                        "robots": .int(calibration.pooledRobots), "runs": .int(calibration.runs),
                        "effects": .object(
                            calibration.effects.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }
                        ),
                        "flagged": .array(calibration.flagged.map(JSONValue.string)),
                    ])
                }
            ),
            "accuracy": .array(
                accuracy.map { group in
                    .fields([
                        "task": .string(group.taskClass), "model": .string(group.model),
                        "quantization": .string(group.quantization), "mode": .string(group.mode),
                        "budgetTokens": group.budgetTokens.map(JSONValue.int) ?? .null, "capped": .bool(group.capped),
                        "parallel": .int(group.parallel), "accuracy": .number(group.accuracy),
                        "trials": .number(group.trials),
                        "robots": .int(group.robots),
                        "bounded": .object(
                            group.bounded.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }
                        ),
                    ])
                }
            ),
            "flagged": .array(Set(calibrations.flatMap(\.flagged)).sorted().map(JSONValue.string)),
        ])
    }
}
