import Foundation

/// Reads measured traces into ``Observation``s: the EdgeReasoning artifact's Orin files and JSON-lines traces.
public enum MeasurementDecoder {
    /// Maps the artifact's model keys (`DeepSeek_R1_Distill_Llama_8B`) to profile names (`DSR1-Llama-8B`).
    public static func canonicalModelName(_ raw: String) -> String {
        var name = raw.replacingOccurrences(of: "_", with: "-")
        if name.hasPrefix("DeepSeek-R1-Distill-") { name = "DSR1-" + name.dropFirst("DeepSeek-R1-Distill-".count) }
        return name
    }

    public static func decode(_ bytes: [UInt8], file: String) throws -> [Observation] {
        let text = String(decoding: bytes, as: UTF8.self)
        let trimmed = text.trimmed
        guard !trimmed.isEmpty else { throw EdgePlanError.invalidFile("file is empty", file: file) }
        // JSON lines: several top-level objects, one per line.
        let lines = trimmed.split(separator: "\n", omittingEmptySubsequences: true)
        if lines.count > 1, lines.first?.hasPrefix("{") == true, lines.first?.hasSuffix("}") == true {
            return try decodeJSONLines(lines, file: file)
        }
        let root: JSONValue
        do { root = try JSONValue.parse(Array(trimmed.utf8)) } catch let error as EdgePlanError {
            throw EdgePlanError.invalidFile(error.message, file: file)
        }
        if let data = root["data"], case .object = data { return try decodeOrinPrefill(data, file: file) }
        if case let .object(pairs) = root,
            pairs.contains(where: {
                if case let .array(rows) = $0.1 { rows.first?["decode_time"] != nil } else { false }
            })
        {
            return try decodeOrinDecode(pairs, file: file)
        }
        if root["tbt_s"] != nil {
            throw EdgePlanError.invalidFile(
                "per-token timing files are replayed by the watchdog, not validated; pass the traces-*.jsonl file",
                file: file
            )
        }
        if case let .object(pairs) = root, let first = pairs.first?.1, first["avg_power_w"] != nil,
            first["ttft_ms"] == nil
        {
            throw EdgePlanError.invalidFile(
                "this file has power and energy but no latencies; use decode_parameters.json for decode runs",
                file: file
            )
        }
        throw EdgePlanError.invalidFile(
            "unrecognised measurement format (expected the artifact's prefill.json, decode_parameters.json or JSON-lines traces)",
            file: file
        )
    }

    private static func number(_ value: JSONValue?, _ file: String, _ field: String, line: Int? = nil) throws -> Double
    {
        guard let number = value?.doubleValue, number.isFinite else {
            throw EdgePlanError.invalidFile("missing or non-numeric field", file: file, line: line, field: field)
        }
        return number
    }

    private static func decodeOrinPrefill(_ data: JSONValue, file: String) throws -> [Observation] {
        guard case let .object(models) = data else { return [] }
        var observations: [Observation] = []
        for (key, series) in models {
            guard case let .array(inputs)? = series["input_tokens"], case let .array(ttft)? = series["ttft_ms"] else {
                throw EdgePlanError.invalidFile(
                    "needs input_tokens and ttft_ms arrays",
                    file: file,
                    field: "data.\(key)"
                )
            }
            let energy: [JSONValue]
            if case let .array(values)? = series["total_energy_j"] { energy = values } else { energy = [] }
            guard inputs.count == ttft.count else {
                throw EdgePlanError.invalidFile(
                    "input_tokens has \(inputs.count) entries but ttft_ms has \(ttft.count)",
                    file: file,
                    field: "data.\(key)"
                )
            }
            for index in inputs.indices {
                let input = try number(inputs[index], file, "data.\(key).input_tokens[\(index)]")
                let latency = try number(ttft[index], file, "data.\(key).ttft_ms[\(index)]") / 1000
                observations.append(
                    Observation(
                        model: canonicalModelName(key),
                        phase: .prefill,
                        inputTokens: Int(input),
                        outputTokens: 0,
                        latencyS: latency,
                        energyJ: index < energy.count ? energy[index].doubleValue : nil
                    )
                )
            }
        }
        return observations
    }

    private static func decodeOrinDecode(_ models: [(String, JSONValue)], file: String) throws -> [Observation] {
        var observations: [Observation] = []
        for (key, value) in models where !key.hasPrefix("_") {
            guard case let .array(rows) = value else { continue }
            for (index, row) in rows.enumerated() {
                let field = "\(key)[\(index)]"
                observations.append(
                    Observation(
                        model: canonicalModelName(key),
                        phase: .decode,
                        inputTokens: Int(try number(row["input_tokens"], file, field + ".input_tokens")),
                        outputTokens: Int(try number(row["output_tokens"], file, field + ".output_tokens")),
                        latencyS: try number(row["decode_time"], file, field + ".decode_time"),
                        energyJ: row["decode_energy"]?.doubleValue
                    )
                )
            }
        }
        return observations
    }

    private static func decodeJSONLines(_ lines: [Substring], file: String) throws -> [Observation] {
        try lines.enumerated().compactMap { number, line in
            let lineNumber = number + 1
            let row: JSONValue
            do { row = try JSONValue.parse(Array(line.utf8)) } catch let error as EdgePlanError {
                throw EdgePlanError.invalidFile(error.message, file: file, line: lineNumber)
            }
            guard let model = row["model"]?.stringValue else {
                throw EdgePlanError.invalidFile("missing model", file: file, line: lineNumber, field: "model")
            }
            // A collector's own records (the model it measured, the idle power) describe the run, not a measurement.
            if let phaseName = row["phase"]?.stringValue, CollectedTrace.contextPhases.contains(phaseName) {
                return nil
            }
            guard let phaseName = row["phase"]?.stringValue, let phase = Observation.Phase(rawValue: phaseName) else {
                throw EdgePlanError.invalidFile(
                    "phase must be prefill or decode",
                    file: file,
                    line: lineNumber,
                    field: "phase"
                )
            }
            let input = try self.number(row["input_tokens"], file, "input_tokens", line: lineNumber)
            let output = try self.number(row["output_tokens"], file, "output_tokens", line: lineNumber)
            let latency = try self.number(row["latency_s"], file, "latency_s", line: lineNumber)
            // Records that name no quantization are of the fp16 weights (traces from before quantization was open).
            let quantization =
                try row["quantization"]?.stringValue.map { try Quantization.parse($0, file: file, line: lineNumber) }
                ?? .fp16
            guard input >= 0, output >= 0, latency >= 0 else {
                throw EdgePlanError.invalidFile(
                    "token counts and latency must not be negative",
                    file: file,
                    line: lineNumber
                )
            }
            return Observation(
                model: canonicalModelName(model),
                quantization: quantization,
                phase: phase,
                inputTokens: Int(input),
                outputTokens: Int(output),
                batch: row["batch"]?.intValue ?? 1,
                latencyS: latency,
                energyJ: row["energy_j"]?.doubleValue
            )
        }
    }
}
