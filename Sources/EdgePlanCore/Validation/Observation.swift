/// One measured run of one phase: what was asked, how long it took, what it drew.
public struct Observation: Sendable, Equatable {
    public enum Phase: String, Sendable, Equatable {
        case prefill
        case decode
    }

    public var model: String
    public var quantization: Quantization
    public var phase: Phase
    public var inputTokens: Int
    public var outputTokens: Int
    public var batch: Int
    public var latencyS: Double
    public var energyJ: Double?

    public init(
        model: String,
        quantization: Quantization = .fp16,
        phase: Phase,
        inputTokens: Int,
        outputTokens: Int,
        batch: Int = 1,
        latencyS: Double,
        energyJ: Double?
    ) {
        self.model = model
        self.quantization = quantization
        self.phase = phase
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.batch = batch
        self.latencyS = latencyS
        self.energyJ = energyJ
    }
}
