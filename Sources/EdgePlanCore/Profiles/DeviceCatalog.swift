/// Datasheet entries for devices a profile can be calibrated on from scratch; `edgeplan calibrate`
/// writes one as `device.yaml` when the output directory has none.
public enum DeviceCatalog {
    public static let devices: [DeviceProfile] =
        [
            DeviceProfile(
                name: "nvidia-h100-80gb",
                displayName: "NVIDIA H100 80GB HBM3 (SXM)",
                memoryGiB: 79.6,
                usableMemoryGiB: 78,
                memoryBandwidthGBps: 3350,
                peakFP16TFLOPS: 989.4,
                peakINT8TOPS: 1978.9,
                idlePowerW: 73,
                powerModes: [.init(name: "default", nvpmodelID: nil, budgetW: 700)],
                calibratedPowerMode: "default",
                electricityUSDPerKWh: 0.15,
                hardwareUSDPerHour: 1.14,
                source:
                    "NVIDIA H100 SXM5 datasheet (dense FP16/INT8 tensor peaks, 3.35 TB/s, 700 W); idle board power 71.5-74.4 W measured with the H100 traces; electricity price as in EdgeReasoning Section III-B; hardware assumed at $30,000 amortized over three years"
            ),
            DeviceProfile(
                name: "nvidia-h200-141gb",
                displayName: "NVIDIA H200 141GB HBM3e (SXM)",
                memoryGiB: 131.3,
                usableMemoryGiB: 130,
                memoryBandwidthGBps: 4800,
                peakFP16TFLOPS: 989.4,
                peakINT8TOPS: 1978.9,
                idlePowerW: 125,
                powerModes: [.init(name: "default", nvpmodelID: nil, budgetW: 700)],
                calibratedPowerMode: "default",
                electricityUSDPerKWh: 0.15,
                hardwareUSDPerHour: 1.5,
                source:
                    "NVIDIA H200 datasheet (141 GB HBM3e, 4.8 TB/s, dense FP16/INT8 tensor peaks as H100 SXM, up to 700 W); idle 122-128 W measured with NVML on an H200 host; electricity as in EdgeReasoning Section III-B; hardware assumed at $40,000 over three years"
            ),
        ] + jetsons

    /// Jetson modules from NVIDIA's module data sheets (Jetson AGX Orin Series, Jetson Orin NX Series, Jetson Orin
    /// Nano Series with the JetPack 6.2 "Super" modes, Jetson AGX Thor T5000). Peaks follow the bundled Orin profile:
    /// the data sheet's sparse INT8 TOPS halved for dense INT8, halved again for FP16 (Thor: sparse FP4 TFLOPS halved
    /// three times). Idle power is not in a data sheet: the figure here is a placeholder until `profile collect`
    /// measures it (its `idle` record), and the source says so.
    static let jetsons: [DeviceProfile] = [
        jetson(
            "jetson-agx-orin-64gb",
            "NVIDIA Jetson AGX Orin 64GB",
            memoryGiB: 64,
            usableGiB: 53.5,
            bandwidth: 204.8,
            sparseTOPS: 275,
            idleW: 5.5,
            modes: [("MAXN", 0, nil), ("15W", 1, 15), ("30W", 2, 30), ("50W", 3, 50)],
            hardwareUSD: 1999,
            note: "Jetson AGX Orin Series data sheet; idle 5.5 W as measured in the EdgeReasoning artifact"
        ),
        jetson(
            "jetson-agx-orin-32gb",
            "NVIDIA Jetson AGX Orin 32GB",
            memoryGiB: 32,
            usableGiB: 26.5,
            bandwidth: 204.8,
            sparseTOPS: 200,
            idleW: 5,
            modes: [("MAXN", 0, nil), ("15W", 1, 15), ("30W", 2, 30), ("40W", 3, 40)],
            hardwareUSD: 999,
            note: "Jetson AGX Orin Series data sheet"
        ),
        jetson(
            "jetson-orin-nx-16gb",
            "NVIDIA Jetson Orin NX 16GB",
            memoryGiB: 16,
            usableGiB: 13,
            bandwidth: 102.4,
            sparseTOPS: 157,
            idleW: 4,
            modes: [("MAXN_SUPER", 0, nil), ("10W", 1, 10), ("15W", 2, 15), ("25W", 3, 25)],
            hardwareUSD: 699,
            note: "Jetson Orin NX Series data sheet, Super mode (JetPack 6.2)"
        ),
        jetson(
            "jetson-orin-nx-8gb",
            "NVIDIA Jetson Orin NX 8GB",
            memoryGiB: 8,
            usableGiB: 6,
            bandwidth: 102.4,
            sparseTOPS: 117,
            idleW: 4,
            modes: [("MAXN_SUPER", 0, nil), ("10W", 1, 10), ("15W", 2, 15), ("20W", 3, 20)],
            hardwareUSD: 479,
            note: "Jetson Orin NX Series data sheet, Super mode (JetPack 6.2)"
        ),
        jetson(
            "jetson-orin-nano-8gb",
            "NVIDIA Jetson Orin Nano 8GB",
            memoryGiB: 8,
            usableGiB: 6,
            bandwidth: 102,
            sparseTOPS: 67,
            idleW: 3,
            modes: [("MAXN_SUPER", 2, nil), ("7W", 1, 7), ("15W", 0, 15), ("25W", 3, 25)],
            hardwareUSD: 249,
            note: "Jetson Orin Nano Series data sheet, Super mode (JetPack 6.2)"
        ),
        jetson(
            "jetson-orin-nano-4gb",
            "NVIDIA Jetson Orin Nano 4GB",
            memoryGiB: 4,
            usableGiB: 2.8,
            bandwidth: 51,
            sparseTOPS: 34,
            idleW: 3,
            modes: [("MAXN_SUPER", 2, nil), ("7W", 1, 7), ("10W", 0, 10), ("25W", 3, 25)],
            hardwareUSD: 199,
            note: "Jetson Orin Nano Series data sheet, Super mode (JetPack 6.2)"
        ),
        jetson(
            "jetson-agx-thor",
            "NVIDIA Jetson AGX Thor (T5000)",
            memoryGiB: 128,
            usableGiB: 110,
            bandwidth: 273,
            sparseTOPS: 1035,
            idleW: 15,
            modes: [("MAXN", 0, nil), ("40W", 1, 40), ("70W", 2, 70), ("120W", 3, 120)],
            hardwareUSD: 3499,
            note:
                "Jetson AGX Thor data sheet: 2,070 sparse FP4 TFLOPS (halved here to sparse FP8 before the usual halvings), 273 GB/s"
        ),
    ]

    private static func jetson(
        _ name: String,
        _ display: String,
        memoryGiB: Double,
        usableGiB: Double,
        bandwidth: Double,
        sparseTOPS: Double,
        idleW: Double,
        modes: [(String, Int, Double?)],
        hardwareUSD: Double,
        note: String
    ) -> DeviceProfile {
        DeviceProfile(
            name: name,
            displayName: display,
            memoryGiB: memoryGiB,
            usableMemoryGiB: usableGiB,
            memoryBandwidthGBps: bandwidth,
            peakFP16TFLOPS: sparseTOPS / 4,
            peakINT8TOPS: sparseTOPS / 2,
            idlePowerW: idleW,
            powerModes: modes.map { .init(name: $0.0, nvpmodelID: $0.1, budgetW: $0.2) },
            calibratedPowerMode: modes[0].0,
            electricityUSDPerKWh: 0.15,
            hardwareUSDPerHour: hardwareUSD / (3 * 365 * 24),
            source:
                "\(note); usable memory and idle power are estimates until measured; electricity as in EdgeReasoning Section III-B; hardware at list price over three years"
        )
    }

    /// The catalog entry for `name`, or an error listing the known devices.
    public static func device(named name: String) throws -> DeviceProfile {
        guard let device = devices.first(where: { $0.name == name.lowercased() }) else {
            throw EdgePlanError.invalidInput(
                "no datasheet for device '\(name)'; known: \(devices.map(\.name).joined(separator: ", ")); or put a device.yaml in the output directory",
                field: "device"
            )
        }
        return device
    }
}
