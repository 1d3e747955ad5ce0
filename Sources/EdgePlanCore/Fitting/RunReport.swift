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

    /// The sequences its decode is judged at: those that ran beside it, or its own k.
    public var decodingSequences: Int { max(runningSequences ?? parallel, parallel) }

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
