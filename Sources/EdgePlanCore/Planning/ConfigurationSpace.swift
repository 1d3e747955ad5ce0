/// Every configuration of one task class that the profile has accuracy data for, with its estimates.
public struct ConfigurationSpace: Sendable {
    public struct Candidate: Sendable {
        public var configuration: Configuration
        public var group: AccuracyModel.Group
        public var variant: ModelVariant
        /// Accuracy of this configuration (voted over its samples), with provenance and interval.
        public var accuracy: AccuracyEstimate
        /// Single-sample accuracy at this budget: what learning shifts and voting lifts.
        public var single: AccuracyEstimate
        public var outputLength: OutputLengthModel
        /// Vote-model inputs: abstention chance and the token count its parameters are read at.
        public var abstention: Double
        public var voteTokens: Double
    }

    public let task: String
    public let answerOptions: Int
    public let candidates: [Candidate]
    /// Where each configuration sits in `candidates`, and the positions of each model-and-mode group.
    private let positions: [Configuration: Int]
    private let groupPositions: [AccuracyModel.Group: [Int]]
    private let groupBudgets: [AccuracyModel.Group: [Int?]]
    /// The model variants its configurations run, each once.
    public let variantIDs: [VariantID]

    private init(task: String, answerOptions: Int, candidates: [Candidate]) {
        self.task = task
        self.answerOptions = answerOptions
        self.candidates = candidates
        var seenVariants: Set<VariantID> = []
        variantIDs = candidates.map(\.variant.id).filter { seenVariants.insert($0).inserted }
        positions = Dictionary(
            candidates.enumerated().map { ($1.configuration, $0) },
            uniquingKeysWith: { first, _ in first }
        )
        groupPositions = Dictionary(grouping: candidates.indices, by: { candidates[$0].group })
        groupBudgets = groupPositions.mapValues { positions in
            var seen: Set<Int?> = []
            return positions.map { candidates[$0].configuration.budgetTokens }.filter { seen.insert($0).inserted }
        }
    }

    /// The position of a configuration in ``candidates``, if the space has it.
    public func position(of configuration: Configuration) -> Int? { positions[configuration] }

    /// The positions in ``candidates`` of a group's configurations (every budget and parallel factor).
    public func positions(of group: AccuracyModel.Group) -> [Int] { groupPositions[group] ?? [] }

    /// The distinct token budgets of a group's configurations, in candidate order.
    public func budgets(of group: AccuracyModel.Group) -> [Int?] { groupBudgets[group] ?? [] }

    /// The same candidates with their variants' coefficients taken from `variants` (after a recalibration).
    public func replacingVariants(_ variants: [VariantID: ModelVariant]) -> ConfigurationSpace {
        ConfigurationSpace(
            task: task,
            answerOptions: answerOptions,
            candidates: candidates.map { candidate in
                var next = candidate
                if let variant = variants[candidate.configuration.variant] { next.variant = variant }
                return next
            }
        )
    }

    /// Enumerates variants × modes × budgets of the class's benchmark table, times each parallel factor. With
    /// `modeledThinkingBudget`, a variant with a hard-cap curve and no measured thinking-budget rows also gets
    /// thinking-budget configurations at the curve's budgets, their accuracy `modeled`
    /// (``AccuracyModel/modeledThinkingBudget(variant:budget:)``) and their length the hard curve's thinking
    /// followed by at most ``LengthMode/answerAllowanceTokens`` of answer.
    public init(
        task: String,
        table: AccuracyTable,
        profile: ProfileSet,
        lengths: OutputLengthFits,
        parallelFactors: [Int],
        modeledThinkingBudget: Bool = false
    ) {
        let model = lengths.accuracyModel(table)
        var candidates: [Candidate] = []
        for (group, budget) in model.candidateBudgets() {
            guard let variant = profile.variants[group.variant], let single = model.estimate(group, budget: budget),
                let length = lengths.model(task: table.task, group: group, budget: budget, accuracy: model)
            else { continue }
            // Vote parameters are read where the chains end: at the cap for capped runs, at the mean length otherwise
            // (a soft budget is only a request in the prompt).
            let voteTokens = group.capped ? Double(budget!) : length.meanTokens
            let abstention = length.capProbability * variant.voting.parameters(atTokens: voteTokens).unansweredAtCap
            for k in parallelFactors {
                let configuration = Configuration(
                    variant: group.variant,
                    mode: group.mode,
                    budgetTokens: budget,
                    capped: group.capped,
                    parallel: k
                )
                candidates.append(
                    Candidate(
                        configuration: configuration,
                        group: group,
                        variant: variant,
                        accuracy: Self.voted(
                            single,
                            samples: k,
                            variant: variant,
                            abstention: abstention,
                            tokens: voteTokens,
                            options: table.answerOptions
                        ),
                        single: single,
                        outputLength: length,
                        abstention: abstention,
                        voteTokens: voteTokens
                    )
                )
            }
        }
        if modeledThinkingBudget {
            let measured = Set(table.records.filter { $0.mode == .thinkingBudget }.map(\.variant))
            for (group, budget) in model.candidateBudgets()
            where group.mode == .hard && group.capped && !measured.contains(group.variant) {
                guard let budget, let variant = profile.variants[group.variant],
                    let single = model.modeledThinkingBudget(variant: group.variant, budget: budget),
                    let thinking = lengths.model(task: table.task, group: group, budget: budget, accuracy: model)
                else { continue }
                let length = OutputLengthModel(
                    mu: thinking.mu,
                    sigma: thinking.sigma,
                    capTokens: LengthMode.thinkingBudget.lengthCap(budget: budget, capped: false),
                    source: thinking.source
                )
                let modeled = AccuracyModel.Group(variant: group.variant, mode: .thinkingBudget, capped: false)
                // Every sample answers (the engine forces the end of thinking), so none abstains from the vote.
                for k in parallelFactors {
                    let configuration = Configuration(
                        variant: group.variant,
                        mode: .thinkingBudget,
                        budgetTokens: budget,
                        capped: false,
                        parallel: k
                    )
                    candidates.append(
                        Candidate(
                            configuration: configuration,
                            group: modeled,
                            variant: variant,
                            accuracy: Self.voted(
                                single,
                                samples: k,
                                variant: variant,
                                abstention: 0,
                                tokens: length.meanTokens,
                                options: table.answerOptions
                            ),
                            single: single,
                            outputLength: length,
                            abstention: 0,
                            voteTokens: length.meanTokens
                        )
                    )
                }
            }
        }
        self.init(task: task, answerOptions: table.answerOptions, candidates: candidates)
    }

    /// The estimate for `samples` voting samples: the interval's ends go through the vote model too, widened by
    /// the vote fit's error. One sample is the single-sample estimate itself.
    static func voted(
        _ single: AccuracyEstimate,
        samples k: Int,
        variant: ModelVariant,
        abstention: Double,
        tokens: Double,
        options: Int
    ) -> AccuracyEstimate {
        guard k > 1 else { return single }
        let anchor = variant.voting.parameters(atTokens: tokens)
        func vote(_ p: Double) -> Double {
            PluralityVote.accuracy(
                single: max(p, 0),
                samples: k,
                abstention: abstention,
                concentration: anchor.concentration,
                options: options
            )
        }
        let fitError = 1.2816 * variant.voting.fitErrorPoints / 100
        let mean = vote(single.accuracy)
        return AccuracyEstimate(
            accuracy: mean,
            low: max(0, vote(single.low) - fitError),
            high: min(1, vote(single.high) + fitError),
            source: single.source == .learned ? .learned : .modeled,
            observations: single.observations
        )
    }
}
