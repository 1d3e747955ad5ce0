import Foundation

/// Validates a profile directory file by file: schema, units, ranges, then physical bounds.
public enum ProfileChecker {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public enum Severity: String, Sendable { case error, warning }
        public var severity: Severity
        public var file: String
        public var line: Int?
        public var field: String?
        public var message: String

        public var description: String {
            var text = "\(severity.rawValue): \(file)"
            if let line { text += ":\(line)" }
            if let field { text += ": \(field)" }
            return text + ": " + message
        }
    }

    /// Every problem found; the profile is usable when none is an error.
    public static func check(_ files: [ProfileDecoder.File]) -> [Problem] {
        var problems: [Problem] = []
        func record(_ error: any Error, file: String) {
            if let error = error as? EdgePlanError {
                problems.append(
                    Problem(
                        severity: .error,
                        file: error.file ?? file,
                        line: error.line,
                        field: error.field,
                        message: error.message
                    )
                )
            } else {
                problems.append(Problem(severity: .error, file: file, line: nil, field: nil, message: "\(error)"))
            }
        }
        var device: DeviceProfile?
        if let deviceFile = files.first(where: { $0.path == "device.yaml" }) {
            do { device = try ProfileDecoder.decodeDevice(deviceFile) } catch { record(error, file: deviceFile.path) }
        } else {
            problems.append(Problem(severity: .error, file: "device.yaml", line: nil, field: nil, message: "missing"))
        }
        var variants: [VariantID: (ModelVariant, String)] = [:]
        for file in files where file.path.hasPrefix("models/") {
            do {
                let variant = try ProfileDecoder.decodeVariant(file)
                if variants[variant.id] != nil {
                    problems.append(
                        Problem(
                            severity: .error,
                            file: file.path,
                            line: nil,
                            field: "model",
                            message: "duplicate variant \(variant.id)"
                        )
                    )
                }
                variants[variant.id] = (variant, file.path)
            } catch { record(error, file: file.path) }
        }
        if variants.isEmpty && !files.contains(where: { $0.path.hasPrefix("models/") }) {
            problems.append(
                Problem(severity: .error, file: "models/", line: nil, field: nil, message: "no model variant files")
            )
        }
        for file in files where file.path.hasPrefix("accuracy/") {
            do {
                let table = try ProfileDecoder.decodeAccuracy(file)
                for (index, row) in table.records.enumerated() where variants[row.variant] == nil {
                    problems.append(
                        Problem(
                            severity: .error,
                            file: file.path,
                            line: nil,
                            field: "rows[\(index)].model",
                            message: "no model file for \(row.variant)"
                        )
                    )
                }
            } catch { record(error, file: file.path) }
        }
        if let device {
            for (variant, path) in variants.values.sorted(by: { $0.1 < $1.1 }) {
                problems += physicalProblems(variant, device: device, file: path)
            }
        }
        return problems
    }

    /// Bounds no real device can beat, and memory the device does not have.
    public static func physicalProblems(_ variant: ModelVariant, device: DeviceProfile, file: String) -> [Problem] {
        var problems: [Problem] = []
        let floor = Roofline.decodeFloorSPerToken(variant, device: device)
        if variant.decodeLatency.nSPerToken < floor * 0.98 {
            problems.append(
                Problem(
                    severity: .error,
                    file: file,
                    line: nil,
                    field: "decode.latency.n_s_per_token",
                    message:
                        "\(variant.decodeLatency.nSPerToken) s/token is faster than streaming \(String(format: "%.2f", variant.weightBytes / 1e9)) GB of weights at \(device.memoryBandwidthGBps) GB/s (\(String(format: "%.4f", floor)) s)"
                )
            )
        }
        for input in [128, 1024, 4096] {
            let predicted = variant.prefillLatency.seconds(input: input)
            let bound = Roofline.prefillFloorS(variant, device: device, input: input)
            if predicted < bound * 0.98 {
                problems.append(
                    Problem(
                        severity: .error,
                        file: file,
                        line: nil,
                        field: "prefill.latency",
                        message:
                            "predicts \(String(format: "%.4f", predicted)) s at \(input) tokens, below the compute bound \(String(format: "%.4f", bound)) s"
                    )
                )
                break
            }
            if predicted <= 0 {
                problems.append(
                    Problem(
                        severity: .error,
                        file: file,
                        line: nil,
                        field: "prefill.latency",
                        message: "predicts a non-positive latency at \(input) tokens"
                    )
                )
                break
            }
        }
        let weightsGiB = variant.weightBytes / 1_073_741_824 + variant.runtimeOverheadGiB
        if weightsGiB > device.usableMemoryGiB {
            problems.append(
                Problem(
                    severity: .warning,
                    file: file,
                    line: nil,
                    field: "parameters_billion",
                    message:
                        "weights need \(String(format: "%.1f", weightsGiB)) GiB but the device has \(device.usableMemoryGiB) GiB usable: this variant never fits"
                )
            )
        }
        let decodePower = variant.decodePower.averagePowerW(
            tokens: 1024,
            seconds: variant.decodeLatency.seconds(input: 512, output: 1024)
        )
        if decodePower > 1000 || decodePower <= 0 {
            problems.append(
                Problem(
                    severity: .error,
                    file: file,
                    line: nil,
                    field: "decode.power",
                    message: "predicts \(decodePower) W at 1024 tokens"
                )
            )
        }
        if variant.calibration == .roofline {
            problems.append(
                Problem(
                    severity: .warning,
                    file: file,
                    line: nil,
                    field: "calibration",
                    message: "roofline estimate only: calibrate on the device before relying on it"
                )
            )
        }
        return problems
    }
}
