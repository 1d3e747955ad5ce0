/// What running one configuration costs: latency, power, energy, memory and money.
public struct Prediction: Sendable, Equatable {
    public var prefillS: Double
    public var decodeS: Double
    public var prefillPowerW: Double
    public var decodePowerW: Double
    public var prefillEnergyJ: Double
    public var decodeEnergyJ: Double
    public var memoryGiB: Double
    public var fits: Bool
    public var costUSDPerMTok: Double

    public var latencyS: Double { prefillS + decodeS }
    public var energyJ: Double { prefillEnergyJ + decodeEnergyJ }
}
