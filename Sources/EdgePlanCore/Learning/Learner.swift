import Foundation

/// One reported outcome of a remembered plan, as the learner sees it.
public struct LearningOutcome: Sendable, Equatable {
    public var taskClass: String
    public var configuration: Configuration
    public var correct: Bool?
    /// Output tokens of each sample (or of the only sample).
    public var sampleOutputTokens: [Int]
    /// Who reported it (the peer's user id).
    public var peer: UInt32

    public init(taskClass: String, configuration: Configuration, correct: Bool?, sampleOutputTokens: [Int], peer: UInt32) {
        self.taskClass = taskClass
        self.configuration = configuration
        self.correct = correct
        self.sampleOutputTokens = sampleOutputTokens
        self.peer = peer
    }
}

/// Learned estimates that replace the profile's for some configurations of some task classes.
public struct LearnedOverlay: Sendable {
    public struct Key: Hashable, Sendable {
        public var taskClass: String
        public var configuration: Configuration
    }

    public var accuracy: [Key: AccuracyEstimate] = [:]
    public var lengths: [Key: OutputLengthModel] = [:]
    /// Changes with every update, so planners built on different overlays never share a cached front.
    public var revision = 0

    public init() {}
}

/// Learns accuracy and output length from reported outcomes: posteriors per task class × model-and-mode group
/// (accuracy) and per task class × model, mode and budget (length), with each peer's influence bounded.
///
/// A pure state machine: the daemon feeds it outcomes and hands its ``overlay`` to the planner.
public struct Learner: Sendable {
    public struct GroupKey: Hashable, Sendable, Comparable {
        public var taskClass: String
        public var group: AccuracyModel.Group
        public static func < (a: GroupKey, b: GroupKey) -> Bool { (a.taskClass, a.group) < (b.taskClass, b.group) }
    }

    public struct LengthKey: Hashable, Sendable {
        public var taskClass: String
        public var group: AccuracyModel.Group
        public var budget: Int?
    }

    /// A peer's record: how its reported successes compare with what its plans predicted.
    public struct PeerRecord: Sendable, Equatable {
        public var reports = 0
        public var successes = 0
        public var expectedSuccesses = 0.0
        public var ignored = false
    }

    /// Why an outcome taught nothing.
    public enum Refusal: String, Sendable, Equatable, CaseIterable {
        case unknownTaskClass = "unknown-task-class"
        case unknownConfiguration = "unknown-configuration"
        case peerEvidenceCap = "peer-evidence-cap"
        case implausiblePeer = "implausible-peer"
        case impossibleLength = "impossible-length"
    }

    public private(set) var accuracy: [GroupKey: AccuracyPosterior] = [:]
    public private(set) var lengths: [LengthKey: LengthPosterior] = [:]
    public private(set) var peers: [UInt32: PeerRecord] = [:]
    public private(set) var refused: [Refusal: Int] = [:]
    public private(set) var overlay = LearnedOverlay()
    /// Groups learned from but not yet rebuilt into the overlay (see ``learn(_:planner:deferRebuild:)``).
    private var dirty: Set<GroupKey> = []
    /// What each group's overlay was last built from: its posterior's quantile indices and its length samples.
    private var builtFrom: [GroupKey: (summary: [Int], lengthSamples: [Int?: Int])] = [:]

    private struct GridKey: Hashable {
        var entry: LearnedOverlay.Key
        /// Abstention in steps of 0.005: finer changes move the vote by less than the grid resolves.
        var abstentionStep: Int
    }

    /// Each configuration's accuracy on the posterior's grid, computed once per abstention step.
    private var votedGrids: [GridKey: [Double]] = [:]

    private mutating func votedGrid(_ entry: LearnedOverlay.Key, p0: Double, vote: VoteContext) -> [Double] {
        var vote = vote
        let step = Int((vote.abstention / 0.005).rounded())
        vote.abstention = Double(step) * 0.005
        let key = GridKey(entry: entry, abstentionStep: step)
        if let cached = votedGrids[key] { return cached }
        let values = AccuracyPosterior.votedGrid(p0: p0, vote: vote)
        votedGrids[key] = values
        return values
    }

    /// A candidate as currently believed: with its learned length (and so its abstention at the cap), if any.
    private func believed(_ candidate: ConfigurationSpace.Candidate, taskClass: String) -> ConfigurationSpace.Candidate {
        guard let length = lengths[LengthKey(taskClass: taskClass, group: candidate.group, budget: candidate.configuration.budgetTokens)],
              length.observations > 0, let model = overlay.lengths[.init(taskClass: taskClass, configuration: candidate.configuration)] else { return candidate }
        var effective = candidate
        effective.outputLength = model
        effective.abstention = model.capProbability * candidate.variant.voting.parameters(atTokens: candidate.voteTokens).unansweredAtCap
        return effective
    }
    public let policy: LearningPolicy

    public init(policy: LearningPolicy = LearningPolicy()) {
        self.policy = policy
    }

    /// Learns from one outcome on `planner`'s profile; returns what was refused, if anything.
    /// With `deferRebuild`, the overlay is brought up to date only by ``rebuildPending(planner:)``: a simulation
    /// batches many outcomes per rebuild.
    @discardableResult
    public mutating func learn(_ outcome: LearningOutcome, planner: Planner, deferRebuild: Bool = false) -> [Refusal] {
        guard let space = planner.space(outcome.taskClass) else { return refuse([.unknownTaskClass]) }
        guard let candidate = space.candidates.first(where: { $0.configuration == outcome.configuration }) else { return refuse([.unknownConfiguration]) }
        var refusals: [Refusal] = []
        let groupKey = GroupKey(taskClass: outcome.taskClass, group: candidate.group)
        if let correct = outcome.correct {
            var record = peers[outcome.peer] ?? PeerRecord()
            record.reports += 1
            if correct { record.successes += 1 }
            record.expectedSuccesses += candidate.accuracy.accuracy
            let wasIgnored = record.ignored
            record.ignored = record.reports >= 30 && Double(record.successes) < policy.minPlausibleSuccessRatio * record.expectedSuccesses
            peers[outcome.peer] = record
            if record.ignored {
                refusals.append(.implausiblePeer)
            } else {
                var posterior = accuracy[groupKey] ?? AccuracyPosterior(priorWeight: planner.policy.task(outcome.taskClass).priorWeight, around: candidate.single.accuracy)
                if posterior.observations(from: outcome.peer) >= policy.maxEvidencePerPeer {
                    refusals.append(.peerEvidenceCap)
                } else {
                    let grid = votedGrid(.init(taskClass: outcome.taskClass, configuration: candidate.configuration), p0: candidate.single.accuracy,
                                         vote: planner.voteContext(believed(candidate, taskClass: outcome.taskClass), options: space.answerOptions))
                    posterior.observe(correct: correct, votedGrid: grid, peer: outcome.peer)
                    accuracy[groupKey] = posterior
                }
            }
            if record.ignored != wasIgnored {
                applyIgnoredPeers()
                refuse(refusals)
                rebuildAll(planner: planner)
                return refusals
            }
        }
        if !outcome.sampleOutputTokens.isEmpty {
            let limit = candidate.configuration.capped ? candidate.configuration.budgetTokens ?? Int.max : candidate.variant.contextTokens
            if outcome.sampleOutputTokens.contains(where: { $0 < 0 || $0 > limit }) || outcome.sampleOutputTokens.count > candidate.configuration.parallel {
                refusals.append(.impossibleLength)
            } else if !(peers[outcome.peer]?.ignored ?? false) {
                let key = LengthKey(taskClass: outcome.taskClass, group: candidate.group, budget: candidate.configuration.budgetTokens)
                var posterior = lengths[key] ?? LengthPosterior(prior: candidate.outputLength, priorWeight: planner.policy.task(outcome.taskClass).priorWeight)
                for tokens in outcome.sampleOutputTokens { posterior.observe(tokens: tokens, capTokens: candidate.outputLength.capTokens) }
                lengths[key] = posterior
            }
        }
        refuse(refusals)
        if deferRebuild {
            dirty.insert(groupKey)
        } else {
            rebuild(groupKey, planner: planner, force: true)
        }
        return refusals
    }

    /// Rebuilds the overlay of every group learned from since the last rebuild; returns the largest change it made,
    /// as accuracy (fraction) or relative mean length, whichever is larger (1 for an estimate that is new), and the
    /// task classes it touched.
    @discardableResult
    public mutating func rebuildPending(planner: Planner) -> (change: Double, classes: Set<String>) {
        let before = overlay
        let classes = Set(dirty.map(\.taskClass))
        for key in dirty.sorted() { rebuild(key, planner: planner) }
        var change = 0.0
        for key in dirty {
            for (entry, estimate) in overlay.accuracy where entry.taskClass == key.taskClass {
                guard let old = before.accuracy[entry] else { change = max(change, 1); continue }
                change = max(change, abs(old.accuracy - estimate.accuracy))
            }
            for (entry, length) in overlay.lengths where entry.taskClass == key.taskClass {
                guard let old = before.lengths[entry] else { change = max(change, 1); continue }
                change = max(change, abs(old.meanTokens - length.meanTokens) / max(old.meanTokens, 1))
            }
        }
        dirty.removeAll()
        return (change, classes)
    }

    /// Recomputes every learned estimate on a new planner (after a reload or recalibration).
    public mutating func rebuildAll(planner: Planner) {
        overlay = LearnedOverlay()
        dirty.removeAll()
        let keys = Set(accuracy.keys).union(lengths.keys.map { GroupKey(taskClass: $0.taskClass, group: $0.group) })
        for key in keys.sorted() { rebuild(key, planner: planner, force: true) }
    }

    private mutating func rebuild(_ key: GroupKey, planner: Planner, force: Bool = false) {
        guard let space = planner.space(key.taskClass) else { return }
        // Summarised once per group: the posterior's quantiles and each budget's fitted length.
        let summary = accuracy[key].flatMap { $0.observations > 0 ? $0.summary : nil }
        // Unchanged on the grid, and no budget's lengths grew by a tenth: the overlay already says this.
        let indices = summary.map { $0.decileIndices + [$0.lowIndex, $0.highIndex] } ?? []
        let samples = Dictionary(lengths.filter { $0.key.taskClass == key.taskClass && $0.key.group == key.group }.map { ($0.key.budget, $0.value.observations) },
                                 uniquingKeysWith: { a, _ in a })
        if !force, let built = builtFrom[key], built.summary == indices,
           samples.allSatisfy({ budget, count in Double(count) < Double(built.lengthSamples[budget] ?? 0) * 1.1 + 1 }) {
            return
        }
        builtFrom[key] = (indices, samples)
        var fitted: [Int?: OutputLengthModel] = [:]
        for candidate in space.candidates where candidate.group == key.group {
            let overlayKey = LearnedOverlay.Key(taskClass: key.taskClass, configuration: candidate.configuration)
            var effective = candidate
            let budget = candidate.configuration.budgetTokens
            if fitted[budget] == nil, let length = lengths[LengthKey(taskClass: key.taskClass, group: key.group, budget: budget)], length.observations > 0 {
                fitted[budget] = length.model
            }
            if let model = fitted[budget] {
                effective.outputLength = model
                effective.abstention = model.capProbability * candidate.variant.voting.parameters(atTokens: candidate.voteTokens).unansweredAtCap
                overlay.lengths[overlayKey] = model
            }
            if let summary {
                let grid = votedGrid(overlayKey, p0: candidate.single.accuracy, vote: planner.voteContext(effective, options: space.answerOptions))
                overlay.accuracy[overlayKey] = AccuracyPosterior.estimate(summary, votedGrid: grid)
            } else {
                overlay.accuracy[overlayKey] = nil
            }
        }
        overlay.revision += 1
    }

    private mutating func applyIgnoredPeers() {
        let ignored = Set(peers.filter(\.value.ignored).map(\.key))
        for key in accuracy.keys { accuracy[key]?.ignoredPeers = ignored }
    }

    @discardableResult
    private mutating func refuse(_ refusals: [Refusal]) -> [Refusal] {
        for refusal in refusals { refused[refusal, default: 0] += 1 }
        return refusals
    }
}
