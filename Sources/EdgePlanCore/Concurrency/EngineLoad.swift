/// What already runs on the engine a request would join: the runs the daemon admitted and has not heard the end of,
/// each with what is left of it as last predicted.
public struct EngineLoad: Sendable, Equatable {
    public struct Run: Sendable, Equatable {
        public var requestID: String
        public var taskClass: String
        /// The model it runs: runs of one model share one engine (a llama-server serves one model); another
        /// model's engine is another load, which the planner does not model.
        public var model: String
        /// The task class's priority in the policy: a higher one may make it yield, an equal or higher one never.
        public var priority: Int
        /// Sequences it decodes (its k).
        public var sequences: Int
        /// Prefill (and fixed cost) still ahead of it, in seconds.
        public var prefillLeftS: Double
        /// Decode tokens each of its sequences still has to produce, at the policy's percentile.
        public var tokensLeft: Double
        /// A decode step for one sequence alone at its context, in seconds.
        public var stepS: Double
        /// One sequence's decode power alone, in watts (its energy share is split from the engine's).
        public var decodePowerW: Double
        /// Seconds from now to its deadline: the whole deadline, so that the safety margin its own plan kept is the
        /// slack later plans may use.
        public var deadlineLeftS: Double
        /// Seconds from now to its end, as predicted when it was last re-predicted.
        public var predictedEndS: Double

        public init(
            requestID: String,
            taskClass: String,
            model: String,
            priority: Int,
            sequences: Int,
            prefillLeftS: Double,
            tokensLeft: Double,
            stepS: Double,
            decodePowerW: Double,
            deadlineLeftS: Double,
            predictedEndS: Double
        ) {
            self.requestID = requestID
            self.taskClass = taskClass
            self.model = model
            self.priority = priority
            self.sequences = sequences
            self.prefillLeftS = prefillLeftS
            self.tokensLeft = tokensLeft
            self.stepS = stepS
            self.decodePowerW = decodePowerW
            self.deadlineLeftS = deadlineLeftS
            self.predictedEndS = predictedEndS
        }

        public var timelineRun: EngineTimeline.Run {
            EngineTimeline.Run(
                id: requestID,
                sequences: sequences,
                prefillS: prefillLeftS,
                tokens: tokensLeft,
                stepS: stepS,
                started: true,
                decodePowerW: decodePowerW
            )
        }
    }

    public var runs: [Run]

    public init(runs: [Run] = []) { self.runs = runs }

    public var isEmpty: Bool { runs.isEmpty }

    /// The runs on the engine of `model`.
    public func on(model: String) -> EngineLoad { EngineLoad(runs: runs.filter { $0.model == model }) }
    public var sequences: Int { runs.reduce(0) { $0 + $1.sequences } }
}

/// A request predicted against the engine's load: when it ends, what it waited, what ran beside it, its own share of
/// the energy, and what it does to the runs already admitted.
public struct BusyPrediction: Sendable, Equatable {
    /// Seconds from now to its end at the policy's percentile, and at the mean output length.
    public var latencyPercentileS: Double
    public var latencyS: Double
    /// Seconds it waits for free slots before its prefill starts.
    public var waitS: Double
    /// Sequences decoding at once while it decodes, its own included: at most, and time-weighted mean.
    public var peakSequences: Int
    public var meanSequences: Double
    /// Its share of the engine's energy at the percentile and at the mean (split by sequences decoding).
    public var energyPercentileJ: Double
    public var energyJ: Double
    /// Sequences of other runs admitted before it (the load it was planned against).
    public var sequencesBeside: Int
    /// Admitted runs it delays, with their new end (seconds from now).
    public var delayed: [(requestID: String, endS: Double)]
    /// Admitted runs of lower priority that must yield for it to fit (their holders are told to stop them).
    public var preempts: [String]

    public static func == (a: BusyPrediction, b: BusyPrediction) -> Bool {
        a.latencyPercentileS == b.latencyPercentileS && a.latencyS == b.latencyS && a.waitS == b.waitS
            && a.peakSequences == b.peakSequences && a.meanSequences == b.meanSequences
            && a.energyPercentileJ == b.energyPercentileJ && a.energyJ == b.energyJ
            && a.sequencesBeside == b.sequencesBeside && a.preempts == b.preempts
            && a.delayed.map(\.requestID) == b.delayed.map(\.requestID)
            && a.delayed.map(\.endS) == b.delayed.map(\.endS)
    }
}
