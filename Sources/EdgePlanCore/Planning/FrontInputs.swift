/// What a cold front reads of one task class's configuration space, laid out for its first pass.
///
/// Only the candidates the class's policy allows, grouped by variant so that each variant is read once: a
/// candidate carries its variant's many fields, and copying one per candidate was about a fifth of a cold front.
/// Each entry holds plain numbers, with the longest sample's length at the policy's latency percentile
/// computed once.
struct FrontInputs: Sendable {
    struct Entry: Sendable {
        /// Where the candidate sits in the space's `candidates`.
        var position: Int
        var parallel: Int
        var accuracy: AccuracyEstimate
        var meanTokens: Double
        /// The length the longest of the candidate's samples stays under with the policy's latency percentile.
        var tailTokens: Double
    }

    struct VariantGroup: Sendable {
        var variant: ModelVariant
        var entries: [Entry]
    }

    let groups: [VariantGroup]

    init(space: ConfigurationSpace, policy: TaskPolicy, latencyPercentile: Double) {
        var order: [VariantID] = []
        var byVariant: [VariantID: VariantGroup] = [:]
        for (position, candidate) in space.candidates.enumerated() where policy.allows(candidate.configuration) {
            let id = candidate.configuration.variant
            let k = candidate.configuration.parallel
            let entry = Entry(
                position: position,
                parallel: k,
                accuracy: candidate.accuracy,
                meanTokens: candidate.outputLength.meanTokens,
                tailTokens: candidate.outputLength.quantileOfMaximum(latencyPercentile, samples: k)
            )
            if byVariant[id] == nil {
                order.append(id)
                byVariant[id] = VariantGroup(variant: candidate.variant, entries: [])
            }
            byVariant[id]!.entries.append(entry)
        }
        groups = order.map { byVariant[$0]! }
    }
}
