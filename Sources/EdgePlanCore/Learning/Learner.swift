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
    /// When it was reported, in seconds (Unix time in the daemon, simulated time in a simulation): the learner's clock.
    public var time: Double

    public init(
        taskClass: String,
        configuration: Configuration,
        correct: Bool?,
        sampleOutputTokens: [Int],
        peer: UInt32,
        time: Double = 0
    ) {
        self.taskClass = taskClass
        self.configuration = configuration
        self.correct = correct
        self.sampleOutputTokens = sampleOutputTokens
        self.peer = peer
        self.time = time
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

    /// No learned estimate at all.
    public var isEmpty: Bool { accuracy.isEmpty && lengths.isEmpty }
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
        /// The run's latency is impossible at its lengths (``Plausibility``): its lengths and correctness teach nothing.
        case implausibleLatency = "implausible-latency"
    }

    public private(set) var accuracy: [GroupKey: AccuracyPosterior] = [:]
    public private(set) var lengths: [LengthKey: LengthPosterior] = [:]
    public private(set) var peers: [UInt32: PeerRecord] = [:]
    public private(set) var refused: [Refusal: Int] = [:]
    /// The latest report time seen: the clock against which optimism is rate-bounded.
    public private(set) var clock = 0.0
    /// Each group's first report time and its outcomes by peer (who could corroborate it).
    private var evidence: [GroupKey: (since: Double, byPeer: [UInt32: Int])] = [:]
    /// Learned estimates currently held back toward their prior, as `class: configuration (what)`.
    public private(set) var heldBack: Set<String> = []
    /// Times a rebuild held an optimistic estimate back (the same estimate counts at every rebuild that holds it).
    public private(set) var heldBackCount = 0
    public private(set) var overlay = LearnedOverlay()
    /// Groups learned from but not yet rebuilt into the overlay (see ``learn(_:planner:deferRebuild:)``).
    private var dirty: Set<GroupKey> = []
    /// What each group's overlay was last built from: its posterior's quantile indices and its length samples.
    private var builtFrom: [GroupKey: (summary: [Int], lengthSamples: [Int?: Int])] = [:]
    /// Each group's posterior summary and the evidence count it was taken at: recomputed only when evidence came.
    private var summaries: [GroupKey: (observations: Int, summary: AccuracyPosterior.Summary?)] = [:]
    /// Each length posterior's last fit and the revision it was fitted at; the next fit starts from it.
    private var fittedLengths: [LengthKey: (revision: Int, model: OutputLengthModel)] = [:]

    private mutating func summary(_ key: GroupKey) -> AccuracyPosterior.Summary? {
        guard let posterior = accuracy[key] else { return nil }
        let observations = posterior.observations
        if let cached = summaries[key], cached.observations == observations { return cached.summary }
        let summary = observations > 0 ? posterior.summary : nil
        summaries[key] = (observations, summary)
        return summary
    }

    private mutating func fittedLength(_ key: LengthKey, _ posterior: LengthPosterior) -> OutputLengthModel {
        let earlier = fittedLengths[key]
        if let earlier, earlier.revision == posterior.revision { return earlier.model }
        let model = posterior.model(startingFrom: earlier?.model)
        fittedLengths[key] = (posterior.revision, model)
        return model
    }

    private struct GridKey: Hashable {
        var entry: LearnedOverlay.Key
        /// Abstention in steps of 0.005: finer changes move the vote by less than the grid resolves.
        var abstentionStep: Int
    }

    /// A configuration's accuracy on the posterior's grid, and the log-likelihood of each outcome there.
    private struct VotedGrid {
        var accuracy: [Double]
        var logCorrect: [Double]
        var logWrong: [Double]
    }

    /// Each configuration's voted grid, computed once per abstention step.
    private var votedGrids: [GridKey: VotedGrid] = [:]

    /// The grid key of a configuration's vote, and the vote with its abstention rounded to that key's step.
    private static func gridKey(_ entry: LearnedOverlay.Key, _ vote: VoteContext) -> (GridKey, VoteContext) {
        var quantized = vote
        let step = Int((vote.abstention / 0.005).rounded())
        quantized.abstention = Double(step) * 0.005
        return (GridKey(entry: entry, abstentionStep: step), quantized)
    }

    private mutating func votedGrid(_ entry: LearnedOverlay.Key, p0: Double, vote: VoteContext) -> VotedGrid {
        let (key, vote) = Self.gridKey(entry, vote)
        if let cached = votedGrids[key] { return cached }
        let values = AccuracyPosterior.votedGrid(p0: p0, vote: vote)
        let grid = VotedGrid(
            accuracy: values,
            logCorrect: AccuracyPosterior.logLikelihood(values, correct: true),
            logWrong: AccuracyPosterior.logLikelihood(values, correct: false)
        )
        votedGrids[key] = grid
        return grid
    }

    /// A configuration's learned estimate: read off its voted grid when one is at hand (the learning path builds
    /// them), otherwise voted at the summary's twelve points alone rather than building the grid's 121.
    private func estimateOnGrid(
        _ summary: AccuracyPosterior.Summary,
        _ entry: LearnedOverlay.Key,
        p0: Double,
        vote: VoteContext
    ) -> AccuracyEstimate {
        let (key, quantized) = Self.gridKey(entry, vote)
        if let grid = votedGrids[key] { return AccuracyPosterior.estimate(summary, votedGrid: grid.accuracy) }
        return AccuracyPosterior.estimate(summary, p0: p0, vote: quantized)
    }

    /// A candidate as currently believed: with its learned length (and so its abstention at the cap), if any.
    private func believed(_ candidate: ConfigurationSpace.Candidate, taskClass: String) -> ConfigurationSpace.Candidate
    {
        guard
            let length = lengths[
                LengthKey(taskClass: taskClass, group: candidate.group, budget: candidate.configuration.budgetTokens)
            ],
            length.observations > 0,
            let model = overlay.lengths[.init(taskClass: taskClass, configuration: candidate.configuration)]
        else { return candidate }
        var effective = candidate
        effective.outputLength = model
        effective.abstention =
            model.capProbability * candidate.variant.voting.parameters(atTokens: candidate.voteTokens).unansweredAtCap
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
        guard let position = space.position(of: outcome.configuration) else { return refuse([.unknownConfiguration]) }
        // Read field by field: a whole candidate (its variant's strings included) is copied only when needed.
        let group = space.candidates[position].group
        let single = space.candidates[position].single.accuracy
        let prior = space.candidates[position].outputLength
        let configuration = space.candidates[position].configuration
        var refusals: [Refusal] = []
        let groupKey = GroupKey(taskClass: outcome.taskClass, group: group)
        clock = max(clock, outcome.time)
        if !(peers[outcome.peer]?.ignored ?? false) {
            evidence[groupKey, default: (outcome.time, [:])].byPeer[outcome.peer, default: 0] += 1
        }
        if let correct = outcome.correct {
            var record = peers[outcome.peer] ?? PeerRecord()
            record.reports += 1
            if correct { record.successes += 1 }
            record.expectedSuccesses += space.candidates[position].accuracy.accuracy
            let wasIgnored = record.ignored
            record.ignored =
                record.reports >= 30
                && Double(record.successes) < policy.minPlausibleSuccessRatio * record.expectedSuccesses
            peers[outcome.peer] = record
            if record.ignored {
                refusals.append(.implausiblePeer)
            } else {
                if (accuracy[groupKey]?.observations(from: outcome.peer) ?? 0) >= policy.maxEvidencePerPeer {
                    refusals.append(.peerEvidenceCap)
                } else {
                    let grid = votedGrid(
                        .init(taskClass: outcome.taskClass, configuration: configuration),
                        p0: single,
                        vote: planner.voteContext(
                            believed(space.candidates[position], taskClass: outcome.taskClass),
                            options: space.answerOptions
                        )
                    )
                    // Updated in place: a copy of the posterior would copy its evidence too.
                    accuracy[
                        groupKey,
                        default: AccuracyPosterior(
                            priorWeight: planner.policy.task(outcome.taskClass).priorWeight,
                            around: single
                        )
                    ]
                    .observe(
                        correct: correct,
                        logLikelihood: correct ? grid.logCorrect : grid.logWrong,
                        peer: outcome.peer
                    )
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
            let limit =
                configuration.capped
                ? configuration.budgetTokens ?? Int.max : space.candidates[position].variant.contextTokens
            if outcome.sampleOutputTokens.contains(where: { $0 < 0 || $0 > limit })
                || outcome.sampleOutputTokens.count > configuration.parallel
            {
                refusals.append(.impossibleLength)
            } else if !(peers[outcome.peer]?.ignored ?? false) {
                let key = LengthKey(taskClass: outcome.taskClass, group: group, budget: configuration.budgetTokens)
                lengths[
                    key,
                    default: LengthPosterior(
                        prior: prior,
                        priorWeight: planner.policy.task(outcome.taskClass).priorWeight
                    )
                ]
                .observe(tokens: outcome.sampleOutputTokens, capTokens: prior.capTokens)
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
    /// as accuracy (fraction) or relative mean length, whichever is larger (1 for an estimate that is new or gone),
    /// and the task classes whose estimates it changed.
    @discardableResult
    public mutating func rebuildPending(planner: Planner) -> (change: Double, classes: Set<String>) {
        var classes: Set<String> = []
        var change = 0.0
        for key in dirty.sorted() {
            let moved = rebuild(key, planner: planner)
            if moved > 0 { classes.insert(key.taskClass) }
            change = max(change, moved)
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

    /// Rebuilds one group's overlay entries; returns the largest change it made to them (see ``rebuildPending(planner:)``).
    @discardableResult
    private mutating func rebuild(_ key: GroupKey, planner: Planner, force: Bool = false) -> Double {
        guard let space = planner.space(key.taskClass) else { return 0 }
        let members = space.positions(of: key.group)
        // Summarised once per group: the posterior's quantiles and each budget's fitted length.
        let summary = summary(key)
        // Unchanged on the grid, and no budget's lengths grew by a tenth: the overlay already says this.
        let indices = summary.map { $0.decileIndices + [$0.lowIndex, $0.highIndex] } ?? []
        // Each budget's length posterior, looked up once (a group has a few budgets, each at several k).
        var posteriors: [Int?: LengthPosterior] = [:]
        for budget in space.budgets(of: key.group) {
            if let length = lengths[LengthKey(taskClass: key.taskClass, group: key.group, budget: budget)] {
                posteriors[budget] = length
            }
        }
        let samples = posteriors.mapValues(\.observations)
        if !force, let built = builtFrom[key], built.summary == indices,
            samples.allSatisfy({ budget, count in Double(count) < Double(built.lengthSamples[budget] ?? 0) * 1.1 + 1 })
        {
            return 0
        }
        builtFrom[key] = (indices, samples)
        var change = 0.0
        let allowance = optimismAllowance(key)
        var fitted: [Int?: OutputLengthModel] = [:]
        for (budget, posterior) in posteriors where posterior.observations > 0 {
            fitted[budget] = fittedLength(
                LengthKey(taskClass: key.taskClass, group: key.group, budget: budget),
                posterior
            )
        }
        for position in members {
            var effective = space.candidates[position]
            let overlayKey = LearnedOverlay.Key(taskClass: key.taskClass, configuration: effective.configuration)
            let budget = effective.configuration.budgetTokens
            if let model = fitted[budget],
                !holdsBack(model, prior: effective.outputLength, allowance, key, effective.configuration)
            {
                effective.abstention =
                    model.capProbability
                    * effective.variant.voting.parameters(atTokens: effective.voteTokens).unansweredAtCap
                effective.outputLength = model
                let old = overlay.lengths.updateValue(model, forKey: overlayKey)
                change = max(change, old.map { abs($0.meanTokens - model.meanTokens) / max($0.meanTokens, 1) } ?? 1)
            }
            let prior = space.candidates[position].accuracy.accuracy
            let estimate = summary.map { summary in
                capped(
                    estimateOnGrid(
                        summary,
                        overlayKey,
                        p0: effective.single.accuracy,
                        vote: planner.voteContext(effective, options: space.answerOptions)
                    ),
                    prior: prior,
                    allowance,
                    key,
                    effective.configuration
                )
            }
            let old =
                estimate.map { overlay.accuracy.updateValue($0, forKey: overlayKey) }
                ?? overlay.accuracy.removeValue(forKey: overlayKey)
            switch (old, estimate) {
            case let (old?, new?): change = max(change, abs(old.accuracy - new.accuracy))
            case (nil, nil): break
            default: change = 1
            }
        }
        overlay.revision += 1
        return change
    }

    /// How far a group's learned accuracy may be above its prior now: nil when peers corroborate it (then as far
    /// as the evidence goes), otherwise points that grow with the hours since the group's first report, up to the
    /// policy's cap. Learned lengths are then not believed below the prior's.
    private func optimismAllowance(_ key: GroupKey) -> Double? {
        guard let evidence = evidence[key] else { return 0 }
        let corroborating = evidence.byPeer.values.filter { $0 >= policy.corroboratingOutcomes }.count
        if corroborating >= policy.corroboratingPeers { return nil }
        let hours = max(0, clock - evidence.since) / 3600
        return min(policy.maxOptimismPoints, policy.optimismPointsPerHour * hours)
    }

    /// Whether a learned length model is shorter than its prior (mean or p95) without corroboration: then the
    /// prior stands.
    private mutating func holdsBack(
        _ model: OutputLengthModel,
        prior: OutputLengthModel,
        _ allowance: Double?,
        _ key: GroupKey,
        _ configuration: Configuration
    ) -> Bool {
        let label = "\(key.taskClass): \(configuration) (lengths)"
        guard allowance != nil, model.meanTokens < prior.meanTokens || model.quantile(0.95) < prior.quantile(0.95)
        else {
            heldBack.remove(label)
            return false
        }
        heldBack.insert(label)
        heldBackCount += 1
        return true
    }

    /// A learned accuracy estimate no higher than its prior plus the allowance: shifted down (interval with it)
    /// when it is.
    private mutating func capped(
        _ estimate: AccuracyEstimate,
        prior: Double,
        _ allowance: Double?,
        _ key: GroupKey,
        _ configuration: Configuration
    ) -> AccuracyEstimate {
        let label = "\(key.taskClass): \(configuration) (accuracy)"
        guard let allowance, estimate.accuracy > prior + allowance else {
            heldBack.remove(label)
            return estimate
        }
        heldBack.insert(label)
        heldBackCount += 1
        let excess = estimate.accuracy - (prior + allowance)
        var held = estimate
        held.accuracy -= excess
        held.low = max(0, held.low - excess)
        held.high = max(held.accuracy, held.high - excess)
        return held
    }

    private mutating func applyIgnoredPeers() {
        let ignored = Set(peers.filter(\.value.ignored).map(\.key))
        for key in accuracy.keys { accuracy[key]?.ignoredPeers = ignored }
        summaries.removeAll()
    }

    /// Counts an outcome refused before it reached the learner (an implausible latency, judged by the caller).
    public mutating func countRefused(_ refusal: Refusal) { refused[refusal, default: 0] += 1 }

    @discardableResult
    private mutating func refuse(_ refusals: [Refusal]) -> [Refusal] {
        for refusal in refusals { refused[refusal, default: 0] += 1 }
        return refusals
    }
}
