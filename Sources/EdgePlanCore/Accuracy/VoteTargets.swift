/// Published parallel-scaling results the vote model is fitted to: accuracy lifts at a budget and sample count.
public struct VoteTargets: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        public var family: ModelFamily
        public var model: String
        public var budgetTokens: Int
        public var samples: Int
        /// The lift is accuracy at `samples` over accuracy at `relativeTo` samples.
        public var relativeTo: Int
        public var lift: Double
        public var quote: String
    }

    public var task: String
    public var source: String
    public var targets: [Target]

    /// Reads a `kind: vote-targets` YAML file; bad values are errors naming file, line and field.
    public static func decode(_ text: String, file: String) throws -> VoteTargets {
        var root = try YAMLObject.parse(text, file: file)
        try root.expectKind("vote-targets")
        var targets: [Target] = []
        for var row in try root.objects("targets") {
            let rawFamily = try row.string("family")
            guard let family = ModelFamily(rawValue: rawFamily) else {
                throw row.error(
                    "family",
                    "unknown family '\(rawFamily)'; use \(ModelFamily.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            targets.append(
                Target(
                    family: family,
                    model: try row.string("model"),
                    budgetTokens: try row.int("budget_tokens", in: 1...1_000_000),
                    samples: try row.int("samples", in: 1...1024),
                    relativeTo: try row.int("relative_to", in: 1...1024),
                    lift: try row.double("lift", in: 0.1...10),
                    quote: try row.string("quote")
                )
            )
            try row.finish()
        }
        let result = VoteTargets(task: try root.string("task"), source: try root.string("source"), targets: targets)
        try root.finish()
        return result
    }
}
