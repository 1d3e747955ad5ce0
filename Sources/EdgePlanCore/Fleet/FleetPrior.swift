/// A fleet version as a robot's prior: each pooled accuracy group becomes pseudo-outcomes from one reserved peer, the
/// fleet, learned before the robot's own. Their number is bounded (`maxWeight`), so the robot's own reports dominate
/// once there are more of them. Each pooled length group becomes as many single-sample lengths, cycling through its
/// quantiles, with no verdict. The learner treats the fleet as one peer: it believes a fleet that is more cautious
/// than the tables at once (lower accuracy, longer outputs), and a more optimistic one only within its bound until
/// the robot's own reports agree.
public enum FleetPrior {
    /// The peer id the fleet's pseudo-outcomes carry (no real user id is this high).
    public static let peer = UInt32.max - 1
    /// The most pseudo-outcomes one group gets: the fleet counts as this many of the robot's own reports at most.
    public static let maxWeight = 200

    /// The pseudo-outcomes of a version's body (`accuracy` groups), for the robot's own device class's task classes.
    public static func outcomes(_ body: JSONValue, maxWeight: Int = FleetPrior.maxWeight) -> [LearningOutcome] {
        var outcomes: [LearningOutcome] = []
        for group in body["accuracy"]?.arrayValue ?? [] {
            guard
                let task = group["task"]?.stringValue, let model = group["model"]?.stringValue,
                let quantization = group["quantization"]?.stringValue.flatMap(Quantization.init(rawValue:)),
                let mode = group["mode"]?.stringValue.flatMap(LengthMode.init(rawValue:)),
                let accuracy = group["accuracy"]?.doubleValue, let trials = group["trials"]?.doubleValue,
                accuracy.isFinite, (0...1).contains(accuracy), trials >= 1
            else { continue }
            let configuration = Configuration(
                variant: VariantID(model: model, quantization: quantization),
                mode: mode,
                budgetTokens: group["budgetTokens"]?.intValue,
                capped: group["capped"]?.boolValue ?? false,
                parallel: group["parallel"]?.intValue ?? 1
            )
            let weight = min(Int(trials.rounded()), maxWeight)
            let successes = Int((accuracy * Double(weight)).rounded())
            // Interleaved, so that no prefix of them says more than the whole.
            var right = 0
            for index in 0..<weight {
                let correct = (index + 1) * successes / weight > right
                if correct { right += 1 }
                outcomes.append(
                    LearningOutcome(
                        taskClass: task,
                        configuration: configuration,
                        correct: correct,
                        sampleOutputTokens: [],
                        peer: peer
                    )
                )
            }
        }
        if case let .array(groups)? = body["lengths"] { outcomes += lengthOutcomes(groups, maxWeight: maxWeight) }
        return outcomes
    }

    /// Pseudo-outcomes that carry a pooled length distribution: one sample each, its quantiles in a stride that
    /// spreads any prefix over the whole distribution (7 and twenty share no factor, so every twenty visit each
    /// quantile once).
    static func lengthOutcomes(_ groups: [JSONValue], maxWeight: Int) -> [LearningOutcome] {
        var outcomes: [LearningOutcome] = []
        for group in groups {
            guard
                let task = group["task"]?.stringValue, let model = group["model"]?.stringValue,
                let quantization = group["quantization"]?.stringValue.flatMap(Quantization.init(rawValue:)),
                let mode = group["mode"]?.stringValue.flatMap(LengthMode.init(rawValue:)),
                case let .array(values)? = group["quantileTokens"], let samples = group["samples"]?.doubleValue,
                samples >= 1
            else { continue }
            let quantiles = values.compactMap(\.intValue)
            guard quantiles.count == values.count, !quantiles.isEmpty, quantiles.allSatisfy({ $0 >= 0 }) else {
                continue
            }
            let configuration = Configuration(
                variant: VariantID(model: model, quantization: quantization),
                mode: mode,
                budgetTokens: group["budgetTokens"]?.intValue,
                capped: group["capped"]?.boolValue ?? false,
                parallel: 1
            )
            for index in 0..<min(Int(samples.rounded()), maxWeight) {
                outcomes.append(
                    LearningOutcome(
                        taskClass: task,
                        configuration: configuration,
                        correct: nil,
                        sampleOutputTokens: [quantiles[Self.spread(index, quantiles.count)]],
                        peer: peer
                    )
                )
            }
        }
        return outcomes
    }

    static func spread(_ index: Int, _ count: Int) -> Int {
        count % 7 == 0 ? index % count : index * 7 % count
    }
}
