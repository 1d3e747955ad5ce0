import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

extension ProfileCommand {
    /// `edgeplan profile new`: a device profile to calibrate models into, from a catalog entry or from flags.
    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new",
            abstract:
                "Scaffold a device profile: device.yaml from the catalog (--device) or from the figures given as flags.",
            discussion:
                "Catalog: \(DeviceCatalog.devices.map(\.name).joined(separator: ", ")). Then `profile collect` and `calibrate -o DIR` add models."
        )

        @Argument(help: "Profile directory to create.") var directory: String
        @Option(help: "A catalog device to start from.") var device: String?
        @Option(help: "Device name (lower case, with dashes), for a device not in the catalog.") var name: String?
        @Option(parsing: .unconditional, help: "Memory, GiB.") var memoryGib: Double?
        @Option(parsing: .unconditional, help: "Memory an engine can use, GiB (default: 85 % of --memory-gib).")
        var usableMemoryGib: Double?
        @Option(parsing: .unconditional, help: "Memory bandwidth, GB/s.") var bandwidthGbps: Double?
        @Option(parsing: .unconditional, help: "Dense FP16 tensor peak, TFLOPS.") var fp16Tflops: Double?
        @Option(parsing: .unconditional, help: "Dense INT8 tensor peak, TOPS (default: twice --fp16-tflops).")
        var int8Tops: Double?
        @Option(parsing: .unconditional, help: "Idle power, watts (profile collect measures it).") var idleW: Double?
        @Option(help: "The power mode the profile is calibrated in.") var powerMode: String?
        @Option(help: "Where the figures come from (a data sheet).") var source: String?

        func run() async throws {
            try await reportingErrors {
                var profile: DeviceProfile
                if let device {
                    profile = try DeviceCatalog.device(named: device)
                } else {
                    guard let name, let memoryGib, let bandwidthGbps, let fp16Tflops else {
                        throw ValidationError(
                            "give --device NAME from the catalog, or --name, --memory-gib, --bandwidth-gbps and --fp16-tflops"
                        )
                    }
                    guard name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" }) else {
                        throw ValidationError("--name takes lower-case letters, digits and dashes, not '\(name)'")
                    }
                    profile = DeviceProfile(
                        name: name,
                        displayName: name,
                        memoryGiB: memoryGib,
                        usableMemoryGiB: usableMemoryGib ?? memoryGib * 0.85,
                        memoryBandwidthGBps: bandwidthGbps,
                        peakFP16TFLOPS: fp16Tflops,
                        peakINT8TOPS: int8Tops ?? fp16Tflops * 2,
                        idlePowerW: idleW ?? 0,
                        powerModes: [.init(name: powerMode ?? "default", nvpmodelID: nil, budgetW: nil)],
                        calibratedPowerMode: powerMode ?? "default",
                        electricityUSDPerKWh: 0.15,
                        hardwareUSDPerHour: 0,
                        source: source ?? "given as flags to edgeplan profile new"
                    )
                }
                if let usableMemoryGib { profile.usableMemoryGiB = usableMemoryGib }
                if let idleW { profile.idlePowerW = idleW }
                if let powerMode {
                    if !profile.powerModes.contains(where: { $0.name == powerMode }) {
                        throw ValidationError(
                            "\(profile.name) has no power mode '\(powerMode)'; its modes: \(profile.powerModes.map(\.name).joined(separator: ", "))"
                        )
                    }
                    profile.calibratedPowerMode = powerMode
                }
                let manager = FileManager.default
                let path = "\(directory)/device.yaml"
                if manager.fileExists(atPath: path) {
                    throw EdgePlanError(.io, "exists; not overwriting a profile", file: path)
                }
                try manager.createDirectory(atPath: "\(directory)/models", withIntermediateDirectories: true)
                try manager.createDirectory(atPath: "\(directory)/accuracy", withIntermediateDirectories: true)
                try AtomicFile.write(ProfileEncoder.device(profile), to: path)
                print(
                    "wrote \(path): \(profile.displayName), \(profile.memoryGiB) GiB, \(profile.memoryBandwidthGBps) GB/s, \(profile.peakFP16TFLOPS) FP16 TFLOPS"
                )
                print(
                    "next: edgeplan profile collect --model NAME -o trace.jsonl, then edgeplan calibrate --traces trace.jsonl --model NAME -o \(directory)"
                )
            }
        }
    }
}

extension ProfileCommand {
    /// `edgeplan profile design --replay`: how much of a published decode sweep a streamed design needs.
    struct Design: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "design",
            abstract:
                "Replay a published decode sweep: fit only from the runs a streamed design measures, score on every run.",
            discussion: """
                One streamed run per input length gives the decode time and energy at every shorter output, so the design \
                measures the shortest input and the longest input that keeps it within --budget-share of the sweep's device \
                time, each to the sweep's longest output. Prints the design, its device time against the sweep's, and the \
                decode latency and energy MAPE over all of the sweep's runs.
                """
        )

        @Option(help: "The sweep to replay (the Orin artifact's decode_parameters.json).") var replay: String =
            "data/orin/decode_parameters.json"
        @Option(parsing: .unconditional, help: "Largest share of the sweep's device time the design may take.")
        var budgetShare: Double = 0.03
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                guard budgetShare > 0, budgetShare <= 1 else {
                    throw ValidationError("--budget-share takes a fraction in (0, 1]")
                }
                let observations = try MeasurementDecoder.decode(
                    Array(try Data(contentsOf: URL(fileURLWithPath: replay))),
                    file: replay
                )
                let models = Dictionary(grouping: observations, by: \.model).keys.sorted()
                var results: [DesignReplay.Result] = []
                for model in models {
                    results.append(
                        try DesignReplay.replay(observations.filter { $0.model == model }, budgetShare: budgetShare)
                    )
                }
                if json {
                    return printJSON(
                        .array(
                            results.map { result in
                                .fields([
                                    "model": .string(result.model), "inputs": .array(result.inputs.map { .int($0) }),
                                    "capTokens": .int(result.capTokens),
                                    "designTimeS": .number(result.designTimeS),
                                    "sweepTimeS": .number(result.sweepTimeS), "share": .number(result.share),
                                    "fittedPoints": .int(result.fittedPoints), "scoredRuns": .int(result.scoredRuns),
                                    "decodeMAPE": .number(result.decodeMAPE),
                                    "energyMAPE": result.energyMAPE.map { .number($0) } ?? .null,
                                    "fullDecodeMAPE": .number(result.fullDecodeMAPE),
                                    "fullEnergyMAPE": result.fullEnergyMAPE.map { .number($0) } ?? .null,
                                ])
                            }
                        )
                    )
                }
                print("replaying \(replay): fit from the design's runs, scored on every run of the sweep")
                print(
                    "model".padded(32) + "design (input -> tokens)".padded(28) + "device time".padded(24)
                        + "decode MAPE  energy MAPE  (whole sweep fitted)"
                )
                for result in results {
                    let design = result.inputs.map { "\($0)->\(result.capTokens)" }.joined(separator: ", ")
                    let time = String(
                        format: "%.1f min of %.2f h (%.1f%%)",
                        result.designTimeS / 60,
                        result.sweepTimeS / 3600,
                        result.share * 100
                    )
                    let energy = result.energyMAPE.map { String(format: "%.2f%%", $0) } ?? "-"
                    let fullEnergy = result.fullEnergyMAPE.map { String(format: "%.2f%%", $0) } ?? "-"
                    print(
                        result.model.padded(32) + design.padded(28) + time.padded(24)
                            + String(format: "%10.2f%%", result.decodeMAPE) + energy.leftPadded(13)
                            + String(format: "  (%.2f%%, ", result.fullDecodeMAPE) + fullEnergy + ")"
                    )
                    print(
                        "  "
                            + String(
                                format: "%d runs scored, %d points fitted; n = %.4f s/token, m = %.3g s/token^2",
                                result.scoredRuns,
                                result.fittedPoints,
                                result.decode.nSPerToken,
                                result.decode.mSPerToken2
                            )
                    )
                }
            }
        }
    }
}
