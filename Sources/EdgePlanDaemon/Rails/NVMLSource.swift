import EdgePlanCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// NVIDIA GPUs through NVML, loaded at run time from `libnvidia-ml.so.1`: board power (mW) and the total
/// energy counter (mJ) of every GPU. Without the library (no NVIDIA driver) the source is unavailable.
public final class NVMLSource: PowerRailSource, @unchecked Sendable {
    private typealias InitFunction = @convention(c) () -> Int32
    private typealias CountFunction = @convention(c) (UnsafeMutablePointer<UInt32>) -> Int32
    private typealias HandleFunction = @convention(c) (UInt32, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private typealias PowerFunction = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt32>) -> Int32
    private typealias EnergyFunction = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt64>) -> Int32
    private typealias NameFunction = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>, UInt32) -> Int32

    private let library: UnsafeMutableRawPointer
    private let power: PowerFunction
    private let energy: EnergyFunction?
    private let devices: [(name: String, handle: OpaquePointer?)]
    public let description: String

    public init(libraryName: String = "libnvidia-ml.so.1") throws {
        guard let library = dlopen(libraryName, RTLD_NOW | RTLD_LOCAL) else {
            throw EdgePlanError(.io, "NVML is not available (\(libraryName): \(String(cString: dlerror())))")
        }
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(library, name).map { unsafeBitCast($0, to: type) }
        }
        guard let initialize = symbol("nvmlInit_v2", as: InitFunction.self),
            let count = symbol("nvmlDeviceGetCount_v2", as: CountFunction.self),
            let handle = symbol("nvmlDeviceGetHandleByIndex_v2", as: HandleFunction.self),
            let power = symbol("nvmlDeviceGetPowerUsage", as: PowerFunction.self)
        else {
            dlclose(library)
            throw EdgePlanError(.io, "\(libraryName) lacks the NVML functions EdgePlan needs")
        }
        let status = initialize()
        guard status == 0 else {
            dlclose(library)
            throw EdgePlanError(.io, "nvmlInit failed with NVML error \(status)")
        }
        var number: UInt32 = 0
        guard count(&number) == 0, number > 0 else {
            dlclose(library)
            throw EdgePlanError(.io, "NVML sees no GPU")
        }
        let name = symbol("nvmlDeviceGetName", as: NameFunction.self)
        var devices: [(String, OpaquePointer?)] = []
        for index in 0..<number {
            var device: OpaquePointer?
            guard handle(index, &device) == 0 else { continue }
            var buffer = [CChar](repeating: 0, count: 96)
            let label =
                (name?(device, &buffer, 96) == 0)
                ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "GPU"
            devices.append(("GPU\(index) \(label)", device))
        }
        self.library = library
        self.power = power
        self.energy = symbol("nvmlDeviceGetTotalEnergyConsumption", as: EnergyFunction.self)
        self.devices = devices
        self.description = "nvml (\(devices.map(\.0).joined(separator: ", ")))"
    }

    public func read() throws -> RailReading {
        var rails: [RailSample] = []
        var problems: [String] = []
        var total: Double? = 0
        for device in devices {
            var milliwatts: UInt32 = 0
            let status = power(device.handle, &milliwatts)
            if status == 0 {
                rails.append(
                    RailSample(name: device.name, powerW: Double(milliwatts) / 1000, voltageV: nil, currentA: nil)
                )
            } else {
                problems.append("\(device.name): nvmlDeviceGetPowerUsage error \(status)")
            }
            var millijoules: UInt64 = 0
            if let energy, energy(device.handle, &millijoules) == 0 {
                total? += Double(millijoules) / 1000
            } else {
                total = nil
            }
        }
        guard !rails.isEmpty else {
            throw EdgePlanError(.io, "no GPU power could be read: " + problems.joined(separator: "; "))
        }
        return RailReading(rails: rails, energyCounterJ: total, problems: problems)
    }
}
