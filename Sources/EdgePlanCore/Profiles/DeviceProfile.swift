/// A device: memory, bandwidth, compute, power modes and the prices that turn time and energy into cost.
public struct DeviceProfile: Sendable, Equatable {
    public struct PowerMode: Sendable, Equatable {
        public var name: String
        /// The `nvpmodel` id of the mode, when the device has one.
        public var nvpmodelID: Int?
        public var budgetW: Double?

        public init(name: String, nvpmodelID: Int?, budgetW: Double?) {
            self.name = name
            self.nvpmodelID = nvpmodelID
            self.budgetW = budgetW
        }
    }

    public var name: String
    public var displayName: String
    public var memoryGiB: Double
    /// Memory an inference engine can actually use (the rest belongs to the OS and carve-outs).
    public var usableMemoryGiB: Double
    public var memoryBandwidthGBps: Double
    public var peakFP16TFLOPS: Double
    public var peakINT8TOPS: Double
    public var idlePowerW: Double
    public var powerModes: [PowerMode]
    /// The mode the profile was calibrated in.
    public var calibratedPowerMode: String
    public var electricityUSDPerKWh: Double
    public var hardwareUSDPerHour: Double
    public var source: String

    public init(
        name: String,
        displayName: String,
        memoryGiB: Double,
        usableMemoryGiB: Double,
        memoryBandwidthGBps: Double,
        peakFP16TFLOPS: Double,
        peakINT8TOPS: Double,
        idlePowerW: Double,
        powerModes: [PowerMode],
        calibratedPowerMode: String,
        electricityUSDPerKWh: Double,
        hardwareUSDPerHour: Double,
        source: String
    ) {
        self.name = name
        self.displayName = displayName
        self.memoryGiB = memoryGiB
        self.usableMemoryGiB = usableMemoryGiB
        self.memoryBandwidthGBps = memoryBandwidthGBps
        self.peakFP16TFLOPS = peakFP16TFLOPS
        self.peakINT8TOPS = peakINT8TOPS
        self.idlePowerW = idlePowerW
        self.powerModes = powerModes
        self.calibratedPowerMode = calibratedPowerMode
        self.electricityUSDPerKWh = electricityUSDPerKWh
        self.hardwareUSDPerHour = hardwareUSDPerHour
        self.source = source
    }
}
