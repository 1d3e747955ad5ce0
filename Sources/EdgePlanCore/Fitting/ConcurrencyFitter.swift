/// Fits a ``DecodeConcurrency`` curve to what `profile collect` measured: the `concurrency` lines (a decode step's
/// time with `sequences` decoding at once, at one or more input lengths; alone, the request's fixed cost) and the
/// `interference` lines (a prompt arriving mid-decode).
public enum ConcurrencyFitter {
    /// One measured step time.
    public struct Step: Sendable, Equatable {
        public var sequences: Int
        public var inputTokens: Int
        public var stepS: Double
        public var powerW: Double?

        public init(sequences: Int, inputTokens: Int, stepS: Double, powerW: Double? = nil) {
            self.sequences = sequences
            self.inputTokens = inputTokens
            self.stepS = stepS
            self.powerW = powerW
        }
    }

    public struct Fit: Sendable, Equatable {
        public var curve: DecodeConcurrency
        /// Each sequence count's factor and how many input lengths measured it.
        public var rows: [(sequences: Int, factor: Double, inputs: Int, heldOutMAPEPct: Double?)]

        public static func == (a: Fit, b: Fit) -> Bool {
            a.curve == b.curve && a.rows.map(\.sequences) == b.rows.map(\.sequences)
                && a.rows.map(\.factor) == b.rows.map(\.factor)
        }
    }

    /// Reads a trace's `concurrency` and `interference` lines, and the client's and engine's times of its decode runs;
    /// other lines are skipped.
    public static func records(
        _ bytes: [UInt8],
        model: String
    ) -> (
        steps: [Step], overheadsS: [Double], interference: [Double], slots: Int?
    ) {
        var steps: [Step] = []
        var overheads: [Double] = []
        var interference: [Double] = []
        var slots: Int?
        for line in bytes.split(separator: 0x0A) where line.count > 2 {
            guard let row = try? JSONValue.parse(Array(line)),
                row["model"]?.stringValue?.lowercased() == model.lowercased()
            else { continue }
            switch row["phase"]?.stringValue {
            case "concurrency":
                guard let b = row["sequences"]?.intValue, let step = row["step_s"]?.doubleValue, step > 0,
                    let input = row["input_tokens"]?.intValue
                else { continue }
                steps.append(
                    Step(sequences: b, inputTokens: input, stepS: step, powerW: row["avg_power_w"]?.doubleValue)
                )
                if let overhead = row["overhead_s"]?.doubleValue, overhead >= 0 { overheads.append(overhead) }
                if let engineSlots = row["engine_slots"]?.intValue { slots = max(slots ?? 0, engineSlots) }
            case "interference":
                if let value = row["interference"]?.doubleValue, value >= 0 { interference.append(value) }
            case "decode":
                // Every decode run records the latency its client saw beside the engine's own: the fixed cost again.
                if let request = row["request_s"]?.doubleValue, let engine = row["engine_s"]?.doubleValue,
                    request > 0, engine > 0
                {
                    overheads.append(max(0, request - engine))
                }
            default:
                continue
            }
        }
        return (steps, overheads, interference, slots)
    }

    /// The median, or nil for no values (RobustRegression's median by selection).
    static func median(_ values: [Double]) -> Double? {
        values.isEmpty ? nil : RobustRegression.median(values)
    }

    /// The curve: each count's factor is the largest over input lengths of its step time over one sequence's at the
    /// same input; held out, each input length's step factor is predicted by the median of the other lengths'.
    public static func fit(
        steps: [Step],
        overheadsS: [Double],
        interference: [Double],
        slots: Int?,
        source: String
    ) -> Fit? {
        let byInput = Dictionary(grouping: steps, by: \.inputTokens)
        var ratios: [Int: [(input: Int, factor: Double, power: Double?)]] = [:]
        for (input, group) in byInput {
            guard let alone = median(group.filter { $0.sequences == 1 }.map(\.stepS)) else { continue }
            let alonePower = median(group.filter { $0.sequences == 1 }.compactMap(\.powerW))
            for b in Set(group.map(\.sequences)) where b > 1 {
                let at = group.filter { $0.sequences == b }
                guard let step = median(at.map(\.stepS)) else { continue }
                let power = alonePower.flatMap { base in median(at.compactMap(\.powerW)).map { $0 / base } }
                ratios[b, default: []].append((input, step / alone, power))
            }
        }
        guard !ratios.isEmpty else { return nil }
        var factors: [Int: Double] = [:]
        var powers: [Int: Double] = [:]
        var rows: [(Int, Double, Int, Double?)] = []
        var errors: [Double] = []
        for (b, measured) in ratios.sorted(by: { $0.key < $1.key }) {
            // Where input lengths disagree, the planner takes the slower: a step that grows with the context beside
            // others is the one a long run meets (caution before optimism).
            let factor = measured.map(\.factor).max()!
            factors[b] = factor
            if let power = median(measured.compactMap(\.power)) { powers[b] = power }
            var heldOut: [Double] = []
            if measured.count >= 2 {
                for (index, one) in measured.enumerated() {
                    let others = measured.enumerated().filter { $0.offset != index }.map(\.element.factor)
                    let predicted = median(others)!
                    heldOut.append(abs(predicted - one.factor) / one.factor * 100)
                }
            }
            errors += heldOut
            rows.append(
                (b, factor, measured.count, heldOut.isEmpty ? nil : heldOut.reduce(0, +) / Double(heldOut.count))
            )
        }
        let mape = errors.isEmpty ? nil : errors.reduce(0, +) / Double(errors.count)
        let curve = DecodeConcurrency(
            stepFactors: factors,
            slots: slots,
            requestOverheadS: median(overheadsS) ?? 0,
            prefillInterference: median(interference) ?? 0,
            powerFactors: powers,
            source: source
                + " (step times by sequences decoding at \(byInput.count) input length\(byInput.count == 1 ? "" : "s"))",
            fitMAPEPct: mape
        )
        return Fit(curve: curve, rows: rows.map { (sequences: $0.0, factor: $0.1, inputs: $0.2, heldOutMAPEPct: $0.3) })
    }
}
