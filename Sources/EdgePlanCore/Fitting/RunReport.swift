/// One plan that ran, as the scheduler reported it: the configuration, the tokens, what it took.
public struct RunReport: Sendable, Equatable {
    public var variant: VariantID
    public var inputTokens: Int
    public var outputTokens: Int
    public var parallel: Int
    public var latencyS: Double
    /// Energy from the report or attributed from the power rails over the run's time window.
    public var energyJ: Double?
    /// When the run was reported, in seconds on the daemon's clock (orders fit and hold-out).
    public var time: Double
    /// The reporting peer's user id (SO_PEERCRED); nil where unknown (runs stored before peers were kept).
    public var peer: UInt32?
    /// Sequences the engine decoded while this run did, its own included (from the daemon's ledger of runs it
    /// planned): the load EdgePlan itself put beside it, which is not drift. Nil: its own k alone.
    public var runningSequences: Int? = nil
    /// Its share of the work on a shared engine (its sequences over all that decoded with it, time-weighted): its
    /// energy is that share of the rails'. Nil: it ran alone.
    public var energyShare: Double? = nil

    /// The sequences its decode is judged at: those that ran beside it, or its own k.
    public var decodingSequences: Int { max(runningSequences ?? parallel, parallel) }

    /// The whole engine's energy over its run (its own energy over its share): what a prediction at
    /// ``decodingSequences`` sequences is compared with.
    public var engineEnergyJ: Double? {
        energyJ.map { $0 / min(1, max(energyShare ?? 1, 1e-3)) }
    }

    public init(
        variant: VariantID,
        inputTokens: Int,
        outputTokens: Int,
        parallel: Int,
        latencyS: Double,
        energyJ: Double?,
        time: Double,
        peer: UInt32? = nil
    ) {
        self.peer = peer
        self.variant = variant
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.parallel = parallel
        self.latencyS = latencyS
        self.energyJ = energyJ
        self.time = time
    }
}
