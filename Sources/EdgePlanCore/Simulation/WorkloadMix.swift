import Foundation

/// A mix of task classes to generate workloads from: each class's share of arrivals and its limits.
public struct WorkloadMix: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var taskClass: String
        public var weight: Double
        public var deadlineS: Double
        /// Deadlines vary by up to this fraction either way.
        public var deadlineJitter: Double
        public var energyBudgetJ: Double?
        public var inputTokens: Int
    }

    public var description: String
    public var entries: [Entry]

    /// Reads a `kind: workload-mix` YAML file.
    public static func decode(_ text: String, file: String) throws -> WorkloadMix {
        var root = try YAMLObject.parse(text, file: file)
        try root.expectKind("workload-mix")
        var entries: [Entry] = []
        for var row in try root.objects("classes") {
            let deadline = try row.string("deadline")
            let energy = try row.optionalString("energy")
            let entry: Entry
            do {
                entry = Entry(
                    taskClass: try row.string("task"),
                    weight: try row.double("weight", in: 0...1_000_000),
                    deadlineS: try QuantityParser.seconds(deadline, field: "deadline", requireUnit: true),
                    deadlineJitter: try row.optionalDouble("deadline_jitter", in: 0...0.9) ?? 0,
                    energyBudgetJ: try energy.map { try QuantityParser.joules($0, field: "energy", requireUnit: true) },
                    inputTokens: try row.int("input_tokens", in: 1...PlanRequest.maxInputTokens)
                )
            } catch let error as EdgePlanError where error.line == nil {
                throw row.error(error.field ?? "classes", error.message)
            }
            entries.append(entry)
            try row.finish()
        }
        guard entries.contains(where: { $0.weight > 0 }) else {
            throw root.error("classes", "needs at least one class with a positive weight")
        }
        let mix = WorkloadMix(description: try root.optionalString("description") ?? "", entries: entries)
        try root.finish()
        return mix
    }

    /// Poisson arrivals at `ratePerS` for `durationS` seconds, classes drawn by weight, deterministic in `seed`.
    /// Calls `emit` once per task, in arrival order, so a long workload is never held in memory.
    public func generate(
        ratePerS: Double,
        durationS: Double,
        seed: UInt64,
        emit: (WorkloadTask) throws -> Void
    ) rethrows {
        var random = SplitMix64(seed: seed)
        let total = entries.map(\.weight).reduce(0, +)
        var time = random.exponential(mean: 1 / ratePerS)
        while time < durationS {
            var pick = random.uniform() * total
            var entry = entries.last!
            for candidate in entries {
                pick -= candidate.weight
                if pick < 0 {
                    entry = candidate
                    break
                }
            }
            let jitter = 1 + entry.deadlineJitter * (2 * random.uniform() - 1)
            try emit(
                WorkloadTask(
                    arrivalS: (time * 1000).rounded() / 1000,
                    taskClass: entry.taskClass,
                    deadlineS: (entry.deadlineS * jitter * 1000).rounded() / 1000,
                    energyBudgetJ: entry.energyBudgetJ,
                    inputTokens: entry.inputTokens
                )
            )
            time += random.exponential(mean: 1 / ratePerS)
        }
    }
}
