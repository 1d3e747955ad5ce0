import Foundation

extension VotingModel {
    /// Majority-vote accuracy of `samples` samples whose single-sample accuracy is `single` at `budgetTokens`.
    ///
    /// The lift grows linearly in `log2(k)` up to the anchor's saturation point and is interpolated between
    /// anchors in log budget; past ``degradationFromSamples`` each doubling costs ``degradationPerDoubling``.
    public func accuracy(single: Double, samples: Int, budgetTokens: Double) -> Double {
        guard samples > 1 else { return single }
        let (lift, saturation) = parameters(atBudget: budgetTokens)
        let doublings = log2(Double(samples))
        let saturationDoublings = log2(max(saturation, 1))
        let progress = saturationDoublings > 0 ? min(doublings, saturationDoublings) / saturationDoublings : 0
        var accuracy = single * (1 + lift * progress)
        if let from = degradationFromSamples, samples >= from {
            let past = log2(Double(samples)) - log2(Double(from)) + 1
            accuracy *= pow(1 - degradationPerDoubling, past)
        }
        return min(accuracy, 0.99)
    }

    private func parameters(atBudget budget: Double) -> (lift: Double, saturation: Double) {
        guard let first = anchors.first, let last = anchors.last else { return (0, 1) }
        if budget <= first.budgetTokens { return (first.maxLift, first.saturationSamples) }
        if budget >= last.budgetTokens { return (last.maxLift, last.saturationSamples) }
        for (lower, upper) in zip(anchors, anchors.dropFirst()) where budget <= upper.budgetTokens {
            let t = (log(budget) - log(lower.budgetTokens)) / (log(upper.budgetTokens) - log(lower.budgetTokens))
            let saturation = exp(log(lower.saturationSamples) + t * (log(upper.saturationSamples) - log(lower.saturationSamples)))
            return (lower.maxLift + t * (upper.maxLift - lower.maxLift), saturation)
        }
        return (last.maxLift, last.saturationSamples)
    }
}
