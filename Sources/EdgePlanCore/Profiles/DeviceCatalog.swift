/// Datasheet entries for devices a profile can be calibrated on from scratch; `edgeplan calibrate`
/// writes one as `device.yaml` when the output directory has none.
public enum DeviceCatalog {
    public static let devices: [DeviceProfile] = [
        DeviceProfile(
            name: "nvidia-h100-80gb", displayName: "NVIDIA H100 80GB HBM3 (SXM)",
            memoryGiB: 79.6, usableMemoryGiB: 78, memoryBandwidthGBps: 3350, peakFP16TFLOPS: 989.4, peakINT8TOPS: 1978.9,
            idlePowerW: 73, powerModes: [.init(name: "default", nvpmodelID: nil, budgetW: 700)], calibratedPowerMode: "default",
            electricityUSDPerKWh: 0.15, hardwareUSDPerHour: 1.14,
            source: "NVIDIA H100 SXM5 datasheet (dense FP16/INT8 tensor peaks, 3.35 TB/s, 700 W); idle board power 71.5-74.4 W measured with the H100 traces; electricity price as in EdgeReasoning Section III-B; hardware assumed at $30,000 amortized over three years"),
    ]

    /// The catalog entry for `name`, or an error listing the known devices.
    public static func device(named name: String) throws -> DeviceProfile {
        guard let device = devices.first(where: { $0.name == name.lowercased() }) else {
            throw EdgePlanError.invalidInput("no datasheet for device '\(name)'; known: \(devices.map(\.name).joined(separator: ", ")); or put a device.yaml in the output directory", field: "device")
        }
        return device
    }
}
