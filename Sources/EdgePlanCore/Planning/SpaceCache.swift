import Synchronization

/// Each task class's configuration space and its front inputs, built on first use and then shared by every
/// planner on the same profile and policy: a command that plans one class builds one space, not all of them.
final class SpaceCache: Sendable {
    let profile: ProfileSet
    let policy: Policy
    let lengths: OutputLengthFits
    /// The classes that have an accuracy table, so a space.
    let names: Set<String>
    private let built: Mutex<[String: Built]>

    /// A class's space and what its cold fronts read of it.
    struct Built: Sendable {
        let space: ConfigurationSpace
        let front: FrontInputs
    }

    init(profile: ProfileSet, policy: Policy, lengths: OutputLengthFits, built: [String: Built] = [:]) {
        self.profile = profile
        self.policy = policy
        self.lengths = lengths
        names = Set(profile.tasks).union(policy.tasks.keys).filter { profile.accuracy[policy.benchmark(of: $0)] != nil }
        self.built = Mutex(built)
    }

    func space(_ name: String) -> ConfigurationSpace? { entry(name)?.space }

    /// What a cold front of the class reads.
    func frontInputs(_ name: String) -> FrontInputs? { entry(name)?.front }

    private func entry(_ name: String) -> Built? {
        guard names.contains(name) else { return nil }
        if let entry = built.withLock({ $0[name] }) { return entry }
        let factors = policy.parallelFactors.filter {
            (policy.task(name).minParallel...policy.task(name).maxParallel).contains($0)
        }
        let space = ConfigurationSpace(
            task: name,
            table: profile.accuracy[policy.benchmark(of: name)]!,
            profile: profile,
            lengths: lengths,
            parallelFactors: factors,
            modeledThinkingBudget: policy.modelsThinkingBudget(policy.task(name))
        )
        let entry = Built(space: space, front: Self.inputs(of: space, policy: policy))
        // Two threads may build the same space at once; the first one stored wins.
        return built.withLock { built in
            if let existing = built[name] { return existing }
            built[name] = entry
            return entry
        }
    }

    private static func inputs(of space: ConfigurationSpace, policy: Policy) -> FrontInputs {
        FrontInputs(space: space, policy: policy.task(space.task), latencyPercentile: policy.latencyPercentile)
    }

    /// The same spaces on a recalibrated profile whose accuracy tables, voting and lengths are unchanged: those
    /// already built take the new variants; the rest are built from the new profile when first asked for.
    func replacingVariants(of profile: ProfileSet) -> SpaceCache {
        let entries = built.withLock {
            $0.mapValues { [policy] entry in
                let space = entry.space.replacingVariants(profile.variants)
                return Built(space: space, front: Self.inputs(of: space, policy: policy))
            }
        }
        return SpaceCache(profile: profile, policy: policy, lengths: lengths, built: entries)
    }
}
