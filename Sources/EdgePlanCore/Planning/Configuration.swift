/// One way to run a task: model variant, length-control mode, token budget and parallel-sampling factor.
public struct Configuration: Sendable, Hashable, CustomStringConvertible {
    public var variant: VariantID
    public var mode: LengthMode
    /// The token budget of soft/hard modes (and capped no-reasoning); nil when unconstrained.
    public var budgetTokens: Int?
    /// Whether the engine stops generation at ``budgetTokens``.
    public var capped: Bool
    public var parallel: Int

    public init(variant: VariantID, mode: LengthMode, budgetTokens: Int?, capped: Bool, parallel: Int) {
        self.variant = variant
        self.mode = mode
        self.budgetTokens = budgetTokens
        self.capped = capped
        self.parallel = parallel
    }

    public var description: String {
        "\(variant) \(mode.rawValue)\(budgetTokens.map { " \($0)" } ?? "")\(capped && mode != .hard ? " capped" : "") x\(parallel)"
    }
}

/// A configuration with everything the solver knows about it at one input length.
public struct EvaluatedConfiguration: Sendable, Equatable {
    public var configuration: Configuration
    public var estimate: AccuracyEstimate
    public var outputLength: OutputLengthModel
    /// Prediction at the mean output length.
    public var mean: Prediction
    /// Total latency when the longest of the samples is at the policy's percentile.
    public var latencyPercentileS: Double
    /// Energy of all samples when the longest is at the policy's percentile: checked against the budget.
    public var energyPercentileJ: Double
    /// Output tokens per sample at that percentile.
    public var percentileOutputTokens: Double
    public var inputTokens: Int

    public var accuracy: Double { estimate.accuracy }
    public var accuracySource: AccuracySource { estimate.source }
    /// Mean energy of a run.
    public var energyJ: Double { mean.energyJ }
}
