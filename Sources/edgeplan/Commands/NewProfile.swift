import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

extension ProfileCommand {
    /// `edgeplan profile new`: a device profile to calibrate models into, from a catalog entry or from flags.
    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new",
            abstract: "Scaffold a device profile: device.yaml from the catalog (--device) or from the figures given as flags.",
            discussion: "Catalog: \(DeviceCatalog.devices.map(\.name).joined(separator: ", ")). Then `profile collect` and `calibrate -o DIR` add models.")

        @Argument(help: "Profile directory to create.") var directory: String
        @Option(help: "A catalog device to start from.") var device: String?
        @Option(help: "Device name (lower case, with dashes), for a device not in the catalog.") var name: String?
        @Option(help: "Memory, GiB.") var memoryGib: Double?
        @Option(help: "Memory an engine can use, GiB (default: 85 % of --memory-gib).") var usableMemoryGib: Double?
        @Option(help: "Memory bandwidth, GB/s.") var bandwidthGbps: Double?
        @Option(help: "Dense FP16 tensor peak, TFLOPS.") var fp16Tflops: Double?
        @Option(help: "Dense INT8 tensor peak, TOPS (default: twice --fp16-tflops).") var int8Tops: Double?
        @Option(help: "Idle power, watts (profile collect measures it).") var idleW: Double?
        @Option(help: "The power mode the profile is calibrated in.") var powerMode: String?
        @Option(help: "Where the figures come from (a data sheet).") var source: String?

        func run() async throws {
            try await reportingErrors {
                var profile: DeviceProfile
                if let device {
                    profile = try DeviceCatalog.device(named: device)
                } else {
                    guard let name, let memoryGib, let bandwidthGbps, let fp16Tflops else {
                        throw ValidationError("give --device NAME from the catalog, or --name, --memory-gib, --bandwidth-gbps and --fp16-tflops")
                    }
                    guard name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" }) else {
                        throw ValidationError("--name takes lower-case letters, digits and dashes, not '\(name)'")
                    }
                    profile = DeviceProfile(
                        name: name, displayName: name, memoryGiB: memoryGib, usableMemoryGiB: usableMemoryGib ?? memoryGib * 0.85,
                        memoryBandwidthGBps: bandwidthGbps, peakFP16TFLOPS: fp16Tflops, peakINT8TOPS: int8Tops ?? fp16Tflops * 2,
                        idlePowerW: idleW ?? 0, powerModes: [.init(name: powerMode ?? "default", nvpmodelID: nil, budgetW: nil)],
                        calibratedPowerMode: powerMode ?? "default", electricityUSDPerKWh: 0.15, hardwareUSDPerHour: 0,
                        source: source ?? "given as flags to edgeplan profile new")
                }
                if let usableMemoryGib { profile.usableMemoryGiB = usableMemoryGib }
                if let idleW { profile.idlePowerW = idleW }
                if let powerMode {
                    if !profile.powerModes.contains(where: { $0.name == powerMode }) {
                        throw ValidationError("\(profile.name) has no power mode '\(powerMode)'; its modes: \(profile.powerModes.map(\.name).joined(separator: ", "))")
                    }
                    profile.calibratedPowerMode = powerMode
                }
                let manager = FileManager.default
                let path = "\(directory)/device.yaml"
                if manager.fileExists(atPath: path) { throw EdgePlanError(.io, "exists; not overwriting a profile", file: path) }
                try manager.createDirectory(atPath: "\(directory)/models", withIntermediateDirectories: true)
                try manager.createDirectory(atPath: "\(directory)/accuracy", withIntermediateDirectories: true)
                try AtomicFile.write(ProfileEncoder.device(profile), to: path)
                print("wrote \(path): \(profile.displayName), \(profile.memoryGiB) GiB, \(profile.memoryBandwidthGBps) GB/s, \(profile.peakFP16TFLOPS) FP16 TFLOPS")
                print("next: edgeplan profile collect --model NAME -o trace.jsonl, then edgeplan calibrate --traces trace.jsonl --model NAME -o \(directory)")
            }
        }
    }
}
