import Foundation

/// Compares a profile's predictions with measurements: MAPE per model, phase and metric.
public struct Validator: Sendable {
    public struct Row: Sendable, Equatable {
        public var model: String
        public var phase: String
        public var metric: String
        public var count: Int
        public var mape: Double
        /// MAPE of the paper's published coefficients on the same points, when the profile keeps them.
        public var referenceMAPE: Double?
        public var skipped: Int
    }

    public let profile: ProfileSet

    public init(profile: ProfileSet) {
        self.profile = profile
    }

    /// MAPE rows for every model in `observations` that the profile knows; runs with no duration are skipped.
    public func compare(_ observations: [Observation]) -> [Row] {
        let predictor = Predictor(device: profile.device)
        var rows: [Row] = []
        let groups = Dictionary(grouping: observations) {
            "\($0.model)|\($0.quantization.rawValue)|\($0.phase.rawValue)"
        }
        for key in groups.keys.sorted() {
            let group = groups[key]!
            let first = group[0]
            guard let variant = profile.variants[VariantID(model: first.model, quantization: first.quantization)] else {
                continue
            }
            let usable = group.filter {
                $0.latencyS > 0 && $0.batch == 1 && ($0.phase == .prefill || $0.outputTokens > 0)
            }
            let skipped = group.count - usable.count
            guard !usable.isEmpty else { continue }
            var latencyErrors: [Double] = []
            var referenceErrors: [Double] = []
            var energyErrors: [Double] = []
            for observation in usable {
                let prediction = predictor.predict(
                    variant,
                    input: observation.inputTokens,
                    output: Double(observation.outputTokens)
                )
                switch observation.phase {
                case .prefill:
                    latencyErrors.append(abs(prediction.prefillS - observation.latencyS) / observation.latencyS)
                    if let reference = variant.prefillLatencyReference {
                        let predicted = reference.seconds(input: observation.inputTokens)
                        referenceErrors.append(abs(predicted - observation.latencyS) / observation.latencyS)
                    }
                    if let energy = observation.energyJ, energy > 0 {
                        energyErrors.append(abs(prediction.prefillEnergyJ - energy) / energy)
                    }
                case .decode:
                    latencyErrors.append(abs(prediction.decodeS - observation.latencyS) / observation.latencyS)
                    if let energy = observation.energyJ, energy > 0 {
                        energyErrors.append(abs(prediction.decodeEnergyJ - energy) / energy)
                    }
                }
            }
            let name = first.quantization == .fp16 ? first.model : "\(first.model) \(first.quantization.rawValue)"
            rows.append(
                Row(
                    model: name,
                    phase: first.phase.rawValue,
                    metric: "latency",
                    count: latencyErrors.count,
                    mape: mean(latencyErrors),
                    referenceMAPE: referenceErrors.isEmpty ? nil : mean(referenceErrors),
                    skipped: skipped
                )
            )
            if !energyErrors.isEmpty {
                rows.append(
                    Row(
                        model: name,
                        phase: first.phase.rawValue,
                        metric: "energy",
                        count: energyErrors.count,
                        mape: mean(energyErrors),
                        referenceMAPE: nil,
                        skipped: skipped
                    )
                )
            }
        }
        return rows
    }

    /// One accuracy-table row with a published mean latency, against the prediction at the task's typical input.
    public struct TableCheck: Sendable, Equatable {
        public var task: String
        public var record: AccuracyRecord
        public var inputTokens: Int
        public var predictedS: Double
        public var measuredS: Double
        public var relativeError: Double { (predictedS - measuredS) / measuredS }
    }

    /// Predicted versus published mean latency for every accuracy row that has one.
    public func tableChecks() -> [TableCheck] {
        let predictor = Predictor(device: profile.device)
        var checks: [TableCheck] = []
        for task in profile.tasks {
            let table = profile.accuracy[task]!
            for record in table.records {
                guard let measured = record.meanLatencyS, let variant = profile.variants[record.variant] else {
                    continue
                }
                let prediction = predictor.predict(
                    variant,
                    input: table.typicalInputTokens,
                    output: record.meanOutputTokens
                )
                checks.append(
                    TableCheck(
                        task: task,
                        record: record,
                        inputTokens: table.typicalInputTokens,
                        predictedS: prediction.latencyS,
                        measuredS: measured
                    )
                )
            }
        }
        return checks
    }

    private func mean(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) * 100
    }
}
