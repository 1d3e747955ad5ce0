/// Every configuration of one task that the profile has accuracy data for, with its single-sample estimate.
public struct ConfigurationSpace: Sendable {
    public struct Candidate: Sendable {
        public var configuration: Configuration
        public var variant: ModelVariant
        public var accuracy: Double
        public var accuracySource: AccuracySource
        public var outputLength: OutputLengthModel
    }

    public let task: String
    public let candidates: [Candidate]

    /// Enumerates variants × modes × budgets from the accuracy table, times each parallel factor.
    public init(task table: AccuracyTable, profile: ProfileSet, parallelFactors: [Int]) {
        let model = AccuracyModel(table: table)
        var candidates: [Candidate] = []
        for (group, budget) in model.candidateBudgets() {
            guard let variant = profile.variants[group.variant], let estimate = model.estimate(group, budget: budget) else { continue }
            let length = OutputLengthModel(
                meanTokens: estimate.meanOutputTokens,
                coefficientOfVariation: variant.outputLength.coefficientOfVariation,
                capTokens: group.capped ? budget : nil)
            let votingBudget = Double(budget ?? Int(estimate.meanOutputTokens.rounded()))
            for k in parallelFactors {
                let configuration = Configuration(variant: group.variant, mode: group.mode, budgetTokens: budget, capped: group.capped, parallel: k)
                candidates.append(Candidate(
                    configuration: configuration,
                    variant: variant,
                    accuracy: variant.voting.accuracy(single: estimate.accuracy, samples: k, budgetTokens: votingBudget),
                    accuracySource: estimate.source,
                    outputLength: length))
            }
        }
        self.task = table.task
        self.candidates = candidates
    }
}
