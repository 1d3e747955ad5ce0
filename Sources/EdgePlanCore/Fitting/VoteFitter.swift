import Foundation

/// Fits the plurality-vote model's parameters (per-question concentration and the unanswered share at the cap)
/// per model family and budget to published parallel-scaling lifts, by exhaustive search on a grid.
public enum VoteFitter {
    /// One target and what the fitted model predicts for it.
    public struct Row: Sendable, Equatable {
        public var target: VoteTargets.Target
        /// Single-sample accuracy and cap probability at the target's budget.
        public var singleAccuracy: Double
        public var capProbability: Double
        public var predictedLift: Double
        /// Target accuracy (lift times the reference accuracy) and the fitted one.
        public var targetAccuracy: Double
        public var fittedAccuracy: Double
        public var errorPoints: Double { abs(fittedAccuracy - targetAccuracy) * 100 }
    }

    public struct Result: Sendable, Equatable {
        public var family: ModelFamily
        public var anchors: [VotingModel.Anchor]
        public var rows: [Row]
        public var rmsePoints: Double
    }

    static let concentrations: [Double] = (0...80).map { pow(10, -2 + Double($0) / 20) }
    static let unanswered: [Double] = (0...40).map { Double($0) / 40 }

    /// Fits every family the targets name on `profile` (the targets' task must be one of its tables).
    public static func fit(_ targets: VoteTargets, profile: ProfileSet) throws -> [Result] {
        let table = try profile.table(task: targets.task)
        let lengths = OutputLengthFits(profile: profile)
        var results: [Result] = []
        for family in ModelFamily.allCases {
            let familyTargets = targets.targets.filter { $0.family == family }
            guard !familyTargets.isEmpty else { continue }
            var anchors: [VotingModel.Anchor] = []
            var rows: [Row] = []
            for budget in Set(familyTargets.map(\.budgetTokens)).sorted() {
                let atBudget = try familyTargets.filter { $0.budgetTokens == budget }.map { target in
                    (target, try single(target, table: table, profile: profile, lengths: lengths))
                }
                var best: (error: Double, concentration: Double, unanswered: Double)?
                for concentration in concentrations {
                    for share in unanswered {
                        var error = 0.0
                        for (target, single) in atBudget {
                            let (fitted, wanted) = predict(
                                target,
                                single,
                                options: table.answerOptions,
                                concentration: concentration,
                                unanswered: share
                            )
                            error += (fitted - wanted) * (fitted - wanted)
                        }
                        if best == nil || error < best!.error - 1e-15 { best = (error, concentration, share) }
                    }
                }
                let anchor = VotingModel.Anchor(
                    budgetTokens: Double(budget),
                    concentration: best!.concentration,
                    unansweredAtCap: best!.unanswered
                )
                anchors.append(anchor)
                for (target, single) in atBudget {
                    let (fitted, wanted) = predict(
                        target,
                        single,
                        options: table.answerOptions,
                        concentration: anchor.concentration,
                        unanswered: anchor.unansweredAtCap
                    )
                    let reference = vote(
                        single,
                        samples: target.relativeTo,
                        options: table.answerOptions,
                        concentration: anchor.concentration,
                        unanswered: anchor.unansweredAtCap
                    )
                    rows.append(
                        Row(
                            target: target,
                            singleAccuracy: single.accuracy,
                            capProbability: single.capProbability,
                            predictedLift: fitted / max(reference, 1e-9),
                            targetAccuracy: wanted,
                            fittedAccuracy: fitted
                        )
                    )
                }
            }
            let rmse = (rows.map { $0.errorPoints * $0.errorPoints }.reduce(0, +) / Double(max(rows.count, 1)))
                .squareRoot()
            results.append(Result(family: family, anchors: anchors, rows: rows, rmsePoints: rmse))
        }
        return results
    }

    /// The profile with every variant's voting section set from the fits; a family without targets borrows the
    /// reasoning family's largest-budget anchor, and its source says so.
    public static func apply(_ results: [Result], to profile: ProfileSet, source: String) -> ProfileSet {
        var next = profile
        let reasoning = results.first { $0.family == .reasoning }
        for (id, variant) in profile.variants {
            var updated = variant
            if let result = results.first(where: { $0.family == variant.family }) {
                updated.voting = VotingModel(
                    anchors: result.anchors,
                    fitErrorPoints: result.rmsePoints,
                    source:
                        "fitted by edgeplan profile fit-votes to \(source) (\(variant.family.rawValue) family, \(result.rows.count) points, RMS error \(result.rmsePoints.significantDigits(3)) points)"
                )
            } else if let reasoning, let last = reasoning.anchors.last {
                updated.voting = VotingModel(
                    anchors: [last],
                    fitErrorPoints: max(reasoning.rmsePoints, 5),
                    source:
                        "no parallel-scaling data for \(variant.family.rawValue) models: the reasoning family's \(Int(last.budgetTokens))-token fit, unverified (error taken as at least 5 points)"
                )
            }
            next.variants[id] = updated
        }
        next.version = ProfileDecoder.contentHash(next.encodedFiles)
        return next
    }

    struct Single {
        var accuracy: Double
        var capProbability: Double
    }

    /// Single-sample accuracy and cap probability of the target's model (fp16, hard cap) at its budget; above the
    /// point where the cap stops binding, the unconstrained run's.
    static func single(
        _ target: VoteTargets.Target,
        table: AccuracyTable,
        profile: ProfileSet,
        lengths: OutputLengthFits
    ) throws -> Single {
        let group = AccuracyModel.Group(
            variant: VariantID(model: target.model, quantization: .fp16),
            mode: .hard,
            capped: true
        )
        let plain = AccuracyModel(table: table)
        let model = lengths.accuracyModel(table)
        if let estimate = model.estimate(group, budget: target.budgetTokens),
            let length = lengths.model(task: table.task, group: group, budget: target.budgetTokens, accuracy: model)
        {
            return Single(accuracy: estimate.accuracy, capProbability: length.capProbability)
        }
        if let free = lengths.unconstrained(task: table.task, group: group, accuracy: plain) {
            return Single(accuracy: free.accuracy, capProbability: 1 - free.model.cdf(Double(target.budgetTokens)))
        }
        throw EdgePlanError.invalidInput(
            "no \(table.task) accuracy for \(target.model) fp16 hard at \(target.budgetTokens) tokens",
            field: "targets"
        )
    }

    static func vote(_ single: Single, samples: Int, options: Int, concentration: Double, unanswered: Double) -> Double
    {
        PluralityVote.accuracy(
            single: single.accuracy,
            samples: samples,
            abstention: single.capProbability * unanswered,
            concentration: concentration,
            options: options
        )
    }

    static func predict(
        _ target: VoteTargets.Target,
        _ single: Single,
        options: Int,
        concentration: Double,
        unanswered: Double
    ) -> (fitted: Double, wanted: Double) {
        let fitted = vote(
            single,
            samples: target.samples,
            options: options,
            concentration: concentration,
            unanswered: unanswered
        )
        let reference = vote(
            single,
            samples: target.relativeTo,
            options: options,
            concentration: concentration,
            unanswered: unanswered
        )
        return (fitted, reference * target.lift)
    }
}
