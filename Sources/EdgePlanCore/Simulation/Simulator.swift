import Foundation

/// Simulates a stream of robot tasks for several policies on one device that runs one request at a time.
///
/// Each policy plans with the same ``Planner``, recalibrates with the same ``CalibrationLoop`` and learns with
/// the same ``Learner`` as the daemon; outcomes come from the ``Truth`` and go back as a `Report` would. All
/// policies see the same random draws for the same request, so differences are the policies'. Deterministic in
/// `seed`; memory does not grow with the number of requests.
public struct Simulator {
    public struct Options: Sendable {
        public var seed: UInt64
        /// Learned outcomes applied to the planner every this many reports (the daemon applies each at once).
        public var applyEvery: Int
        /// Width of the time windows plotted over time.
        public var windowS: Double
        /// Seconds between periodic refits, as the daemon's `--refit-interval`.
        public var refitIntervalS: Double
        /// Learned estimates are handed to the planner when one moved by more than this (accuracy fraction or
        /// relative mean length): 0.2 points of accuracy or 0.2 % of length.
        public var materialChange = 0.002
        /// Who reports the runs back: the truth, or a liar.
        public var reporter: Reporter
        /// Tasks start as they arrive and share the engine (its concurrency curve), and a policy with the ledger on
        /// plans each against the runs it admitted; false: the device runs one request at a time and the rest queue.
        public var overlap = false

        public init(
            seed: UInt64 = 7,
            applyEvery: Int = 20,
            windowS: Double = 900,
            refitIntervalS: Double = 600,
            reporter: Reporter = .honest,
            overlap: Bool = false
        ) {
            self.overlap = overlap
            self.seed = seed
            self.applyEvery = max(applyEvery, 1)
            self.windowS = windowS
            self.refitIntervalS = refitIntervalS
            self.reporter = reporter
        }
    }

    /// The one peer that reports every run.
    public enum Reporter: String, Sendable, CaseIterable {
        case honest
        /// Reports every run's outputs half as long as they were, in 40 % of the time and energy (each token 20 %
        /// faster, within the plausibility bounds), and every answer that came in time right: what makes the
        /// planner most optimistic, as a liar who knows the filters would.
        case optimisticLiar = "optimistic-liar"
    }

    /// One policy's run and what it measured.
    public struct Run: Sendable {
        public let spec: SimulatedPolicy
        var planner: Planner
        var loop: CalibrationLoop?
        public internal(set) var learner: Learner?
        var pending = 0
        var deviceFreeAt = 0.0
        var lastRefit = 0.0
        var context = "default"
        public internal(set) var overall = SimulationTally()
        public internal(set) var classes: [String: SimulationTally] = [:]
        public internal(set) var windows: [Int: SimulationWindow] = [:]
        public internal(set) var traces: [LearnedTrace] = []
        public internal(set) var recalibrations = 0
        /// Times learned estimates moved enough to hand the planner a new overlay.
        public internal(set) var learnedUpdates = 0
        /// (deadline, correct) bins for accuracy against deadline: log2 bins of the deadline in seconds.
        public internal(set) var byDeadline: [Int: SimulationWindow] = [:]
        /// With overlap: the true engine of each model, the runs on them, and the policy's ledger of what it admitted.
        var engines: [String: EngineTimeline.Engine] = [:]
        var inFlight: [SimulatedWorld.FlightKey: SimulatedWorld.Flight] = [:]
        var admitted = AdmittedRuns()
        var started = 0
    }

    public var profile: ProfileSet { world.profile }
    public var truth: Truth { world.truth }
    public let options: Options
    public private(set) var runs: [Run]
    private var world: SimulatedWorld
    private var lastArrival = -Double.infinity
    public private(set) var processed = 0
    private var nextTraceAt: Double

    public init(profile: ProfileSet, truth: Truth, policies: [SimulatedPolicy], options: Options = Options()) throws {
        guard let first = policies.first else {
            throw EdgePlanError.invalidInput("nothing to simulate: give at least one policy", field: "policy")
        }
        self.options = options
        world = try SimulatedWorld(profile: profile, truth: truth, policy: first.policy, options: options)
        runs = try policies.map { spec in
            let planner = try Planner(profile: profile, policy: spec.policy)
            var run = Run(spec: spec, planner: planner)
            if case let .planner(recalibrate, learn) = spec.kind {
                if recalibrate { run.loop = CalibrationLoop(profile: profile, at: 0) }
                if learn { run.learner = Learner(policy: spec.policy.learning) }
            }
            if case let .fixed(configuration) = spec.kind {
                guard
                    planner.taskClasses.contains(where: {
                        planner.space($0)?.candidates.contains { $0.configuration == configuration } ?? false
                    })
                else {
                    throw EdgePlanError.invalidInput(
                        "fixed configuration \(configuration) is in no task class's space of this profile",
                        field: "baseline"
                    )
                }
            }
            return run
        }
        nextTraceAt = options.windowS
        for index in runs.indices where runs[index].learner != nil {
            runs[index].traces = truth.shifts.compactMap { shift in
                guard
                    let candidate = world.classes[shift.taskClass]?.candidates.values.filter({
                        $0.configuration.variant.model == shift.model && $0.configuration.parallel == 1
                            && (shift.mode == nil || $0.configuration.mode == shift.mode)
                    }).min(by: {
                        ($0.single.accuracy, "\($0.configuration)") > ($1.single.accuracy, "\($1.configuration)")
                    })
                else { return nil }
                let trueSingle = world.trueSingleAccuracy(shift.taskClass, candidate)
                return LearnedTrace(
                    taskClass: shift.taskClass,
                    group: candidate.group,
                    configuration: candidate.configuration,
                    truth: trueSingle,
                    prior: candidate.single.accuracy
                )
            }
        }
    }

    /// Runs one task for every policy.
    public mutating func process(_ task: WorkloadTask) throws {
        guard task.arrivalS >= lastArrival else {
            throw EdgePlanError.invalidInput(
                "arrival times must not go backwards (\(task.arrivalS) s after \(lastArrival) s)",
                field: "at"
            )
        }
        guard world.classes[task.taskClass] != nil else {
            throw EdgePlanError(
                .unknownTask,
                "unknown task class '\(task.taskClass)'; the policy knows \(world.truePlanner.taskClasses.joined(separator: ", "))",
                field: "task"
            )
        }
        lastArrival = task.arrivalS
        while task.arrivalS >= nextTraceAt {
            recordTraces(at: nextTraceAt)
            nextTraceAt += options.windowS
        }
        for index in runs.indices {
            var random = SplitMix64(seed: options.seed &+ UInt64(processed) &* 0x9E37_79B9_7F4A_7C15)
            // In place: the run is neither copied nor moved.
            if options.overlap {
                try world.start(&runs[index], task, random: &random)
            } else {
                try world.step(&runs[index], task, random: &random)
            }
        }
        processed += 1
    }

    /// Plays every shared engine to its end, then closes the last time window of the learned traces.
    public mutating func finish() throws {
        for index in runs.indices where options.overlap { try world.settle(&runs[index], until: .infinity) }
        recordTraces(at: lastArrival)
    }

    private mutating func recordTraces(at t: Double) {
        for index in runs.indices {
            guard let learner = runs[index].learner else { continue }
            for trace in runs[index].traces.indices {
                let entry = runs[index].traces[trace]
                let key = Learner.GroupKey(taskClass: entry.taskClass, group: entry.group)
                guard let candidate = world.classes[entry.taskClass]?.candidates[entry.configuration] else { continue }
                if let posterior = learner.accuracy[key], posterior.observations > 0 {
                    let estimate = posterior.estimate(
                        p0: candidate.single.accuracy,
                        vote: VoteContext(samples: 1, abstention: 0, concentration: 1, options: 4)
                    )
                    runs[index].traces[trace].points.append(
                        (t, estimate.accuracy, estimate.low, estimate.high, posterior.observations)
                    )
                } else {
                    runs[index].traces[trace].points.append(
                        (t, entry.prior, candidate.single.low, candidate.single.high, 0)
                    )
                }
            }
        }
    }
}
