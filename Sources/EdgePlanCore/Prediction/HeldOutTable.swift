import Foundation

/// Requests timed on a running engine that no collection measured, and what a profile predicts for each: how the
/// shared-engine model is judged. A row is one request of `parallel` samples of `output` tokens after `input` prompt
/// tokens, sent while `beside` sequences of another request were already decoding (0: an idle engine), and the
/// latency the client saw.
public struct HeldOutTable: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var model: String
        public var quantization: Quantization
        public var input: Int
        public var output: Int
        public var parallel: Int
        public var beside: Int
        public var latencyS: Double
    }

    /// A row with its prediction.
    public struct Scored: Sendable, Equatable {
        public var row: Row
        public var predictedS: Double
        /// Signed error of the prediction, percent of the measurement (positive: predicted too long).
        public var errorPct: Double
        /// Whether the prediction read the concurrency curve past its largest measured count.
        public var extrapolated: Bool
        /// Where the step factors came from (the curve's source).
        public var source: String
    }

    public var rows: [Row]

    public init(rows: [Row]) { self.rows = rows }

    /// Reads JSON lines of `model`, `input`, `output`, `parallel`, `latency_s`, and optionally `beside` (default 0)
    /// and `quantization` (default fp16); other keys are kept by the file and ignored here. Every error names its line.
    public static func parse(_ text: String, file: String) throws -> HeldOutTable {
        var rows: [Row] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let number = index + 1
            let value: JSONValue
            do { value = try JSONValue.parse(Array(trimmed.utf8)) } catch {
                throw EdgePlanError.invalidFile("not JSON: \(error)", file: file, line: number)
            }
            func int(_ key: String, _ range: ClosedRange<Int>, default fallback: Int? = nil) throws -> Int {
                guard let field = value[key], !field.isNull else {
                    if let fallback { return fallback }
                    throw EdgePlanError.invalidFile("missing", file: file, line: number, field: key)
                }
                guard let int = field.intValue, range.contains(int) else {
                    throw EdgePlanError.invalidFile(
                        "must be a whole number within \(range.lowerBound)...\(range.upperBound)",
                        file: file,
                        line: number,
                        field: key
                    )
                }
                return int
            }
            guard let model = value["model"]?.stringValue, !model.isEmpty else {
                throw EdgePlanError.invalidFile("missing", file: file, line: number, field: "model")
            }
            let quantizationName = value["quantization"]?.stringValue ?? Quantization.fp16.rawValue
            guard let quantization = Quantization(rawValue: quantizationName.lowercased()) else {
                throw EdgePlanError.invalidFile(
                    "unknown quantization '\(quantizationName)'",
                    file: file,
                    line: number,
                    field: "quantization"
                )
            }
            guard let latencyS = value["latency_s"]?.doubleValue, latencyS > 0, latencyS < 86_400 else {
                throw EdgePlanError.invalidFile(
                    "must be seconds within (0, 86400)",
                    file: file,
                    line: number,
                    field: "latency_s"
                )
            }
            rows.append(
                Row(
                    model: model,
                    quantization: quantization,
                    input: try int("input", 1...PlanRequest.maxInputTokens),
                    output: try int("output", 1...1_000_000),
                    parallel: try int("parallel", 1...256),
                    beside: try int("beside", 0...1024, default: 0),
                    latencyS: latencyS
                )
            )
        }
        guard !rows.isEmpty else { throw EdgePlanError.invalidFile("no held-out requests", file: file) }
        return HeldOutTable(rows: rows)
    }

    /// Every row predicted on `profile`.
    public func scored(on profile: ProfileSet) throws -> [Scored] {
        let predictor = Predictor(device: profile.device)
        var curves: [VariantID: DecodeConcurrency] = [:]
        return try rows.map { row in
            let variant = try profile.variant(model: row.model, quantization: row.quantization)
            let curve = curves[variant.id] ?? variant.engineCurve
            curves[variant.id] = curve
            let predicted = predictor.latencyS(
                variant,
                curve: curve,
                input: row.input,
                output: Double(row.output),
                parallel: row.parallel,
                beside: row.beside
            )
            return Scored(
                row: row,
                predictedS: predicted,
                errorPct: (predicted - row.latencyS) / row.latencyS * 100,
                extrapolated: curve.stepFactor(row.parallel + row.beside).extrapolated,
                source: curve.source
            )
        }
    }

    /// Mean absolute percentage error of scored rows (nil for none).
    public static func mape(_ scored: [Scored]) -> Double? {
        scored.isEmpty ? nil : scored.reduce(0) { $0 + abs($1.errorPct) } / Double(scored.count)
    }
}

extension Predictor {
    /// Latency of a request of `parallel` samples sent while `beside` sequences of another request already decode
    /// (and go on decoding past its end): its prefill, then each token at the step time of `parallel + beside`
    /// sequences, on the engine's concurrency curve. With nothing beside, ``latencyS(_:input:output:parallel:)``.
    public func latencyS(
        _ variant: ModelVariant,
        curve: DecodeConcurrency,
        input: Int,
        output: Double,
        parallel: Int,
        beside: Int
    ) -> Double {
        guard beside > 0 else { return latencyS(variant, input: input, output: output, parallel: parallel) }
        var running = variant.timelineRun(id: "beside", parallel: beside, input: input, tokens: 1e9)
        running.started = true
        running.prefillS = 0
        let newcomer = variant.timelineRun(id: "new", parallel: parallel, input: input, tokens: output)
        return EngineTimeline(concurrency: curve).playInOrder([running, newcomer])[1]?.endS
            ?? latencyS(variant, input: input, output: output, parallel: parallel + beside)
    }
}
