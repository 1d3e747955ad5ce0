import Foundation

/// Where a predicted accuracy comes from.
public enum AccuracySource: String, Sendable, Equatable, Codable, CaseIterable {
    /// A row of the accuracy table.
    case measured
    /// Between two measured budgets of the same model and mode.
    case interpolated
    /// From a model: majority voting over several samples, or a hard-cap curve extended toward the unconstrained run.
    case modeled
    /// A posterior from reported outcomes.
    case learned
}

/// A predicted accuracy with where it comes from and how sure it is.
public struct AccuracyEstimate: Sendable, Equatable {
    /// Expected fraction correct, 0...1.
    public var accuracy: Double
    /// The 80 % credible interval around it.
    public var low: Double
    public var high: Double
    public var source: AccuracySource
    /// Reported outcomes behind a learned estimate (0 otherwise).
    public var observations: Int

    public init(accuracy: Double, low: Double, high: Double, source: AccuracySource, observations: Int = 0) {
        self.accuracy = accuracy
        self.low = min(low, accuracy)
        self.high = max(high, accuracy)
        self.source = source
        self.observations = observations
    }

    /// A measured accuracy over `questions` questions: the 80 % interval of its Beta posterior.
    public static func measured(_ accuracy: Double, questions: Int) -> AccuracyEstimate {
        let interval = BetaDistribution(
            alpha: accuracy * Double(questions) + 0.5,
            beta: (1 - accuracy) * Double(questions) + 0.5
        ).interval()
        return AccuracyEstimate(
            accuracy: accuracy,
            low: interval.lowerBound,
            high: interval.upperBound,
            source: .measured
        )
    }

    /// The 80 % half-width of a binomial proportion over `questions`.
    static func halfWidth(_ accuracy: Double, questions: Int) -> Double {
        1.2816 * (max(accuracy * (1 - accuracy), 1e-4) / Double(max(questions, 1))).squareRoot()
    }
}
