import Synchronization

/// Each task class's configuration space, built on first use and then shared by every planner on the same
/// profile: a command that plans one class builds one space, not all of them.
final class SpaceCache: Sendable {
    let profile: ProfileSet
    let policy: Policy
    let lengths: OutputLengthFits
    /// The classes that have an accuracy table, so a space.
    let names: Set<String>
    private let built: Mutex<[String: ConfigurationSpace]>

    init(profile: ProfileSet, policy: Policy, lengths: OutputLengthFits, built: [String: ConfigurationSpace] = [:]) {
        self.profile = profile
        self.policy = policy
        self.lengths = lengths
        names = Set(profile.tasks).union(policy.tasks.keys).filter { profile.accuracy[policy.benchmark(of: $0)] != nil }
        self.built = Mutex(built)
    }

    func space(_ name: String) -> ConfigurationSpace? {
        guard names.contains(name) else { return nil }
        if let space = built.withLock({ $0[name] }) { return space }
        let factors = policy.parallelFactors.filter { $0 <= policy.task(name).maxParallel }
        let space = ConfigurationSpace(task: name, table: profile.accuracy[policy.benchmark(of: name)]!, profile: profile, lengths: lengths, parallelFactors: factors)
        // Two threads may build the same space at once; the first one stored wins.
        return built.withLock { built in
            if let existing = built[name] { return existing }
            built[name] = space
            return space
        }
    }

    /// The same spaces on a recalibrated profile whose accuracy tables, voting and lengths are unchanged: those
    /// already built take the new variants; the rest are built from the new profile when first asked for.
    func replacingVariants(of profile: ProfileSet) -> SpaceCache {
        let spaces = built.withLock { $0.mapValues { $0.replacingVariants(profile.variants) } }
        return SpaceCache(profile: profile, policy: policy, lengths: lengths, built: spaces)
    }
}
