import Foundation

/// What a fleet learns from its robots, pooled robustly and bounded per robot.
///
/// - Calibrations: per device class, power mode and model variant, each robot's median ratio of measured to predicted latency
///   (its robot effect); a robot whose effect differs from the class median by more than a threshold is flagged and
///   left out; the pooled ratio is the median of the others.
/// - Accuracy: per task class and model-and-mode group, single-sample successes and trials, each robot's evidence
///   capped; no one robot moves a pooled accuracy by more than `maxInfluence` (the bound a lone peer has on a
///   robot's own learner), whichever way.
/// - Output lengths: per task class, model-and-mode group and budget, each robot's sample lengths summarised by
///   quantiles, pooled as a mixture with each robot's weight capped; no one robot moves the pooled geometric-mean
///   length by more than `maxLengthInfluence`, whichever way.
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
        /// The most one robot moves a pooled geometric-mean output length, as a share, either way.
        public var maxLengthInfluence = 0.10

        public init() {}
    }

    public struct Calibration: Sendable, Equatable {
        public var deviceClass: String
        /// The power mode the runs ran in (nvpmodel's `pmode:0000`, or the profile's calibrated mode).
        public var powerMode: String
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
        public var powerMode: String
        public var model: String
        public var quantization: String
        public var medianRatio: Double
        public var runs: Int

        public init(
            robot: String,
            deviceClass: String,
            powerMode: String = "",
            model: String,
            quantization: String,
            medianRatio: Double,
            runs: Int
        ) {
            self.robot = robot
            self.deviceClass = deviceClass
            self.powerMode = powerMode
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
            var powerMode: String
            var model: String
            var quantization: String
            static func < (a: Key, b: Key) -> Bool {
                (a.deviceClass, a.powerMode, a.model, a.quantization)
                    < (b.deviceClass, b.powerMode, b.model, b.quantization)
            }
        }
        var byVariant: [Key: [RobotRatio]] = [:]
        for robot in robots where robot.runs >= options.minRuns && robot.medianRatio.isFinite && robot.medianRatio > 0 {
            byVariant[
                Key(
                    deviceClass: robot.deviceClass,
                    powerMode: robot.powerMode,
                    model: robot.model,
                    quantization: robot.quantization
                ),
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
                powerMode: key.powerMode,
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

    /// Weights under which no member moves the weighted mean of `values` by more than `bound` against the mean of the
    /// others, whichever way, and the influence each bounded member had when it was first bounded. The most
    /// influential member is bounded first, to exactly the bound, and the rest are judged again against it: the
    /// result does not depend on the members' order, and an honest member is not bounded for a liar's pull.
    public static func bounded(weights: [Double], values: [Double], bound: Double) -> ([Double], [Int: Double]) {
        var weights = weights
        var influences: [Int: Double] = [:]
        guard weights.count > 1 else { return (weights, influences) }
        // Each round bounds one member; a handful of rounds per member is far more than any real group needs.
        for _ in 0..<(4 * weights.count) {
            let total = weights.reduce(0, +)
            let sum = zip(weights, values).reduce(0) { $0 + $1.0 * $1.1 }
            var worst: (index: Int, influence: Double, others: Double, without: Double)?
            for index in weights.indices {
                let others = total - weights[index]
                guard others > 0 else { continue }
                let without = (sum - weights[index] * values[index]) / others
                let influence = sum / total - without
                if abs(influence) > bound * (1 + 1e-9), abs(influence) > abs(worst?.influence ?? 0) {
                    worst = (index, influence, others, without)
                }
            }
            guard let worst else { break }
            if influences[worst.index] == nil { influences[worst.index] = worst.influence }
            // The weight at which it moves the mean by exactly the bound.
            weights[worst.index] = bound * worst.others / (abs(values[worst.index] - worst.without) - bound)
        }
        return (weights, influences)
    }

    /// A pooled group: task class, model, quantization, mode, budget (-1: none), cap and parallel factor (lengths,
    /// which are per sample, leave it at 0).
    struct GroupKey: Hashable, Comparable {
        var task: String
        var model: String
        var quantization: String
        var mode: String
        var budget: Int
        var capped: Bool
        var parallel: Int
        static func < (a: GroupKey, b: GroupKey) -> Bool {
            if (a.task, a.model, a.quantization, a.mode) != (b.task, b.model, b.quantization, b.mode) {
                return (a.task, a.model, a.quantization, a.mode) < (b.task, b.model, b.quantization, b.mode)
            }
            return (a.budget, a.capped ? 1 : 0, a.parallel) < (b.budget, b.capped ? 1 : 0, b.parallel)
        }
    }

    /// Pools accuracy evidence; `excluded` robots (flagged ones) are left out.
    public static func accuracy(
        _ tallies: [Tally],
        options: Options = Options(),
        excluded: Set<String> = []
    ) -> [Accuracy] {
        let groups = accuracyGroups(tallies, options: options, excluded: excluded)
        return groups.keys.sorted().map { key in
            poolAccuracy(key, groups[key]!.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, options: options)
        }
    }

    /// Each robot's evidence in accuracy groups, capped: (successes, trials) by robot, per group.
    static func accuracyGroups(
        _ tallies: [Tally],
        options: Options,
        excluded: Set<String>
    ) -> [GroupKey: [String: (Double, Double)]] {
        var groups: [GroupKey: [String: (Double, Double)]] = [:]
        for tally in tallies where !excluded.contains(tally.robot) && tally.trials > 0 {
            // A robot's evidence counts up to the cap: a busy or lying robot cannot outweigh the rest by volume.
            let scale = min(1, Double(options.maxEvidencePerRobot) / Double(tally.trials))
            let key = GroupKey(
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
        return groups
    }

    /// One accuracy group pooled from its robots' capped evidence (in the robots' order), each bounded.
    static func poolAccuracy(_ key: GroupKey, _ robots: [(String, (Double, Double))], options: Options) -> Accuracy {
        let (weights, influences) = bounded(
            weights: robots.map(\.1.1),
            values: robots.map { $0.1.0 / $0.1.1 },
            bound: options.maxInfluence
        )
        let trials = weights.reduce(0, +)
        let accuracy = zip(weights, robots).reduce(0) { $0 + $1.0 * $1.1.1.0 / $1.1.1.1 } / trials
        let bounded = Dictionary(uniqueKeysWithValues: influences.map { (robots[$0.key].0, $0.value) })
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

    /// The probability levels at which lengths are summarised: the midpoints of twenty equally likely bins.
    public static let lengthLevels = (0..<20).map { (Double($0) + 0.5) / 20 }

    /// One robot's sample output lengths in one group and budget: how many, and their quantiles at ``lengthLevels``.
    public struct LengthSummary: Sendable, Equatable {
        public var robot: String
        public var taskClass: String
        public var model: String
        public var quantization: String
        public var mode: String
        public var budgetTokens: Int?
        public var capped: Bool
        public var samples: Int
        public var quantiles: [Double]

        public init(
            robot: String,
            taskClass: String,
            model: String,
            quantization: String,
            mode: String,
            budgetTokens: Int? = nil,
            capped: Bool = false,
            samples: Int,
            quantiles: [Double]
        ) {
            self.robot = robot
            self.taskClass = taskClass
            self.model = model
            self.quantization = quantization
            self.mode = mode
            self.budgetTokens = budgetTokens
            self.capped = capped
            self.samples = samples
            self.quantiles = quantiles
        }
    }

    /// A pooled output-length distribution: its quantiles at ``lengthLevels``, in tokens.
    public struct Lengths: Sendable, Equatable {
        public var taskClass: String
        public var model: String
        public var quantization: String
        public var mode: String
        public var budgetTokens: Int?
        public var capped: Bool
        public var quantiles: [Int]
        /// The samples behind it, after each robot's cap and bound.
        public var samples: Double
        public var robots: Int
        /// Robots whose influence was bounded, with how far (a share of the geometric-mean length) they would have
        /// moved it.
        public var bounded: [String: Double]

        /// The pooled median, in tokens.
        public var medianTokens: Double {
            Double(quantiles[quantiles.count / 2 - 1] + quantiles[quantiles.count / 2]) / 2
        }
    }

    /// Pools length summaries; `excluded` robots (flagged ones) are left out.
    public static func lengths(
        _ summaries: [LengthSummary],
        options: Options = Options(),
        excluded: Set<String> = []
    ) -> [Lengths] {
        let groups = lengthGroups(summaries, excluded: excluded)
        return groups.keys.sorted().map { key in
            poolLengths(LengthGroup(key, groups[key]!, options: options), options: options)!
        }
    }

    /// Each robot's usable length summary per group, in the robots' order.
    static func lengthGroups(_ summaries: [LengthSummary], excluded: Set<String>) -> [GroupKey: [LengthSummary]] {
        var groups: [GroupKey: [String: LengthSummary]] = [:]
        for summary in summaries
        where !excluded.contains(summary.robot) && summary.samples > 0
            && summary.quantiles.count == lengthLevels.count
            && summary.quantiles.allSatisfy({ $0.isFinite && $0 >= 0 })
        {
            let key = GroupKey(
                task: summary.taskClass,
                model: summary.model,
                quantization: summary.quantization,
                mode: summary.mode,
                budget: summary.budgetTokens ?? -1,
                capped: summary.capped,
                parallel: 0
            )
            groups[key, default: [:]][summary.robot] = summary
        }
        return groups.mapValues { $0.sorted { $0.key < $1.key }.map(\.value) }
    }

    /// A length group made ready to pool, with or without some members: every member's quantiles in one
    /// ascending list (each with its member's index), each member's centre (the mean of its log quantiles) and
    /// capped weight, computed once, so that pooling it without a member is a walk, not a sort.
    struct LengthGroup {
        var key: GroupKey
        var members: [LengthSummary]
        var points: [(value: Double, member: Int)]
        var centres: [Double]
        var weights: [Double]
        /// Each point's share of the mixture of all members at their capped weights, and the shares of the points
        /// below it; each member's points (indices into `points`, ascending).
        var shares: [Double]
        var before: [Double]
        var pointsOf: [[Int]]

        init(_ key: GroupKey, _ members: [LengthSummary], options: Options) {
            self.key = key
            self.members = members
            points = members.enumerated().flatMap { index, member in
                member.quantiles.map { (value: $0, member: index) }
            }
            .sorted { $0.value < $1.value }
            centres = members.map { member in
                member.quantiles.reduce(0) { $0 + log(max($1, 1)) } / Double(member.quantiles.count)
            }
            let weights = members.map { Double(min($0.samples, options.maxEvidencePerRobot)) }
            self.weights = weights
            shares = points.map { weights[$0.member] / Double(members[$0.member].quantiles.count) }
            var running = 0.0
            before = shares.map { share in
                defer { running += share }
                return running
            }
            var pointsOf = [[Int]](repeating: [], count: members.count)
            for (index, point) in points.enumerated() { pointsOf[point.member].append(index) }
            self.pointsOf = pointsOf
        }

        /// The mixture's quantiles at ``lengthLevels`` without the `leaving` members, the others at their capped
        /// weights: by binary search on the shares below each point, less the leaving members' (which only their
        /// own points change), rather than a walk over every point. What the walk gives, for a group that loses
        /// one member at a time.
        func quantilesLeaving(_ leaving: Set<Int>, total: Double) -> [Int] {
            let gone = leaving.flatMap { pointsOf[$0] }.sorted()
            var goneBefore = [0.0]
            for index in gone { goneBefore.append(goneBefore.last! + shares[index]) }
            func isGone(_ index: Int) -> Bool { leaving.contains(points[index].member) }
            func nextKept(_ index: Int) -> Int? {
                var index = index
                while index < points.count, isGone(index) { index += 1 }
                return index < points.count ? index : nil
            }
            func position(_ index: Int) -> Double {
                // Shares of the leaving members' points below this one.
                var low = 0
                var high = gone.count
                while low < high {
                    let middle = (low + high) / 2
                    if gone[middle] < index { low = middle + 1 } else { high = middle }
                }
                return (before[index] - goneBefore[low] + shares[index] / 2) / total
            }
            let firstKept = nextKept(0)
            var lastKept: Int?
            var index = points.count - 1
            while index >= 0, lastKept == nil {
                if !isGone(index) { lastKept = index }
                index -= 1
            }
            guard let firstKept, let lastKept else { return lengthLevels.map { _ in 0 } }
            return lengthLevels.map { level -> Int in
                // The first kept point at or past the level.
                var low = 0
                var high = points.count
                while low < high {
                    let middle = (low + high) / 2
                    if let kept = nextKept(middle), position(kept) >= level { high = middle } else { low = middle + 1 }
                }
                guard low < points.count, let upper = nextKept(low) else {
                    return Int(points[lastKept].value.rounded())
                }
                guard upper != firstKept else { return Int(points[upper].value.rounded()) }
                var lower = upper - 1
                while isGone(lower) { lower -= 1 }
                let (from, to) = (position(lower), position(upper))
                let fraction = to > from ? (level - from) / (to - from) : 0
                return Int((points[lower].value + fraction * (points[upper].value - points[lower].value)).rounded())
            }
        }
    }

    /// One length group pooled from its members (less the `leaving` ones): each counts up to the evidence cap and is
    /// bounded on its geometric-mean length, and the pool is the mixture of their distributions. Nil when no member
    /// is left.
    static func poolLengths(
        _ group: LengthGroup,
        options: Options,
        leaving: Set<Int> = [],
        walk: Bool = false
    ) -> Lengths? {
        let key = group.key
        let members = group.members
        let points = group.points
        let kept = members.indices.filter { !leaving.contains($0) }
        guard !kept.isEmpty else { return nil }
        let (keptWeights, influences) = bounded(
            weights: kept.map { group.weights[$0] },
            values: kept.map { group.centres[$0] },
            bound: log(1 + options.maxLengthInfluence)
        )
        let bounded = Dictionary(
            uniqueKeysWithValues: influences.map { (members[kept[$0.key]].robot, exp($0.value) - 1) }
        )
        let total = keptWeights.reduce(0, +)
        func pooled(_ quantiles: [Int]) -> Lengths {
            Lengths(
                taskClass: key.task,
                model: key.model,
                quantization: key.quantization,
                mode: key.mode,
                budgetTokens: key.budget < 0 ? nil : key.budget,
                capped: key.capped,
                quantiles: quantiles,
                samples: total,
                robots: kept.count,
                bounded: bounded
            )
        }
        // A group left without some members, none of the rest bounded: their weights are the capped ones.
        if !walk, !leaving.isEmpty, influences.isEmpty {
            return pooled(group.quantilesLeaving(leaving, total: total))
        }
        // The mixture of the robots' distributions, each quantile carrying an equal share of its robot's weight.
        var share = [Double](repeating: 0, count: members.count)
        for (index, weight) in zip(kept, keptWeights) {
            share[index] = weight / Double(members[index].quantiles.count)
        }
        // One walk up the sorted points: each level's quantile interpolates between the points whose mixture
        // positions straddle it (the first point at or past it, and the one before).
        let levels = lengthLevels
        var quantiles = [Int](repeating: 0, count: levels.count)
        var level = 0
        var cumulative = 0.0
        var previous: (value: Double, position: Double)?
        for point in points where share[point.member] > 0 {
            let weight = share[point.member]
            let position = (cumulative + weight / 2) / total
            cumulative += weight
            while level < levels.count, position >= levels[level] {
                if let previous {
                    let span = position - previous.position
                    let fraction = span > 0 ? (levels[level] - previous.position) / span : 0
                    quantiles[level] = Int((previous.value + fraction * (point.value - previous.value)).rounded())
                } else {
                    quantiles[level] = Int(point.value.rounded())
                }
                level += 1
            }
            previous = (point.value, position)
            if level == levels.count { break }
        }
        for index in level..<levels.count { quantiles[index] = Int((previous?.value ?? 0).rounded()) }
        return pooled(quantiles)
    }

    /// The version's body as JSON: calibrations, accuracy, lengths and the flagged robots.
    public static func body(calibrations: [Calibration], accuracy: [Accuracy], lengths: [Lengths] = []) -> JSONValue {
        .fields([
            "calibrations": .array(
                calibrations.map { calibration in
                    .fields([
                        "deviceClass": .string(calibration.deviceClass), "powerMode": .string(calibration.powerMode),
                        "model": .string(calibration.model),
                        "quantization": .string(calibration.quantization), "latencyRatio": .number(calibration.ratio),
                        "robots": .int(calibration.pooledRobots), "runs": .int(calibration.runs),
                        "effects": .object(
                            calibration.effects.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }
                        ),
                        "flagged": .array(calibration.flagged.map(JSONValue.string)),
                    ])
                }
            ),
            "accuracy": .array(accuracy.map(json)),
            "lengths": .array(lengths.map(json)),
            "flagged": .array(Set(calibrations.flatMap(\.flagged)).sorted().map(JSONValue.string)),
        ])
    }

    /// A pooled accuracy group as a version holds it.
    public static func json(_ group: Accuracy) -> JSONValue {
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

    /// A pooled length group as a version holds it.
    public static func json(_ group: Lengths) -> JSONValue {
        .fields([
            "task": .string(group.taskClass), "model": .string(group.model),
            "quantization": .string(group.quantization), "mode": .string(group.mode),
            "budgetTokens": group.budgetTokens.map(JSONValue.int) ?? .null, "capped": .bool(group.capped),
            "quantileTokens": .array(group.quantiles.map(JSONValue.int)),
            "samples": .number(group.samples), "robots": .int(group.robots),
            "bounded": .object(
                group.bounded.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }
            ),
        ])
    }
}
