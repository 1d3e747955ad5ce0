/// Writes profile values back as the YAML that ``ProfileDecoder`` reads (round-trips exactly up to 9 digits).
///
/// Used by calibration, offline and in the daemon, to write the profiles it fits.
public enum ProfileEncoder {
    /// The text of `models/<model>.<quantization>.yaml`.
    public static func variant(_ v: ModelVariant) -> String {
        var out = """
            kind: model-variant
            model: \(string(v.id.model))
            quantization: \(v.id.quantization.rawValue)
            family: \(v.family.rawValue)
            calibration: \(v.calibration.rawValue)
            engine_model: \(string(v.engineModel))
            parameters_billion: \(number(v.parametersBillion))
            bytes_per_weight: \(number(v.bytesPerWeight))
            kv_cache_bytes_per_token: \(number(v.kvCacheBytesPerToken))
            runtime_overhead_gib: \(number(v.runtimeOverheadGiB))
            context_tokens: \(v.contextTokens)
            prefill:
              latency:
            \(prefill(v.prefillLatency, indent: "    "))
            """
        if let reference = v.prefillLatencyReference {
            out += "\n  latency_reference:\n" + prefill(reference, indent: "    ")
        }
        out += "\n  power:\n" + power(v.prefillPower, source: v.prefillPowerSource, indent: "    ")
        out += """

            decode:
              latency:
                m_s_per_token2: \(number(v.decodeLatency.mSPerToken2))
                n_s_per_token: \(number(v.decodeLatency.nSPerToken))
                source: \(string(v.decodeLatency.source))
              power:
            \(power(v.decodePower, source: v.decodePowerSource, indent: "    "))
            parallel:
              latency_slope_per_sample: \(number(v.parallel.latencySlopePerSample))
              power_gain_per_doubling: \(number(v.parallel.powerGainPerDoubling))\(measuredFactors(v.parallel))
              source: \(string(v.parallel.source))\(concurrency(v.concurrency))
            voting:
              anchors:

            """
        for anchor in v.voting.anchors {
            out +=
                "    - {budget_tokens: \(number(anchor.budgetTokens)), concentration: \(number(anchor.concentration)), unanswered_at_cap: \(number(anchor.unansweredAtCap))}\n"
        }
        out += """
              fit_error_points: \(number(v.voting.fitErrorPoints))
              source: \(string(v.voting.source))
            output_length:
              coefficient_of_variation: \(number(v.outputLength.coefficientOfVariation))
              source: \(string(v.outputLength.source))

            """
        return out
    }

    /// The text of `device.yaml`.
    public static func device(_ d: DeviceProfile) -> String {
        var out = """
            kind: device
            name: \(string(d.name))
            display_name: \(string(d.displayName))
            memory_gib: \(number(d.memoryGiB))
            usable_memory_gib: \(number(d.usableMemoryGiB))
            memory_bandwidth_gbps: \(number(d.memoryBandwidthGBps))
            peak_fp16_tflops: \(number(d.peakFP16TFLOPS))
            peak_int8_tops: \(number(d.peakINT8TOPS))
            idle_power_w: \(number(d.idlePowerW))
            power_modes:

            """
        for mode in d.powerModes {
            var fields = ["name: \(string(mode.name))"]
            if let id = mode.nvpmodelID { fields.append("nvpmodel_id: \(id)") }
            if let budget = mode.budgetW { fields.append("budget_w: \(number(budget))") }
            out += "  - {\(fields.joined(separator: ", "))}\n"
        }
        out += """
            calibrated_power_mode: \(string(d.calibratedPowerMode))
            cost:
              electricity_usd_per_kwh: \(number(d.electricityUSDPerKWh))
              hardware_usd_per_hour: \(number(d.hardwareUSDPerHour))
            source: \(string(d.source))

            """
        return out
    }

    /// The text of `accuracy/<task>.yaml`, keeping only rows whose variant passes `keep`.
    public static func accuracy(_ table: AccuracyTable, keep: (VariantID) -> Bool = { _ in true }) -> String {
        var out = """
            kind: accuracy-table
            task: \(string(table.task))
            description: \(string(table.description))
            source: \(string(table.source))
            typical_input_tokens: \(table.typicalInputTokens)
            answer_options: \(table.answerOptions)
            questions: \(table.questions)
            rows:

            """
        for row in table.records where keep(row.variant) {
            var fields = [
                "model: \(string(row.variant.model))", "quantization: \(row.variant.quantization.rawValue)",
                "mode: \(row.mode.rawValue)",
            ]
            if let budget = row.budgetTokens { fields.append("budget_tokens: \(budget)") }
            if row.capped != (row.mode == .hard) { fields.append("capped: \(row.capped)") }
            fields.append("accuracy_pct: \(number(row.accuracy * 100))")
            fields.append("mean_output_tokens: \(number(row.meanOutputTokens))")
            if let latency = row.meanLatencyS { fields.append("mean_latency_s: \(number(latency))") }
            fields.append("source: \(string(row.source))")
            out += "  - {\(fields.joined(separator: ", "))}\n"
        }
        return out
    }

    private static func prefill(_ model: PrefillLatencyModel, indent: String) -> String {
        [
            "a_s_per_token2: \(number(model.aSPerToken2))",
            "b_s_per_token: \(number(model.bSPerToken))",
            "c_s: \(number(model.cS))",
            "padding_tokens: \(model.paddingTokens)",
            "source: \(string(model.source))",
        ].map { indent + $0 }.joined(separator: "\n")
    }

    private static func power(_ curve: PowerCurve, source: String, indent: String) -> String {
        var lines = ["form: \(curve.formName)"]
        switch curve {
        case let .piecewiseLog(threshold, constant, slope, intercept):
            lines += [
                "threshold_tokens: \(number(threshold))", "constant_w: \(number(constant))",
                "log_slope_w: \(number(slope))", "log_intercept_w: \(number(intercept))",
            ]
        case let .linear(slope, intercept):
            lines += ["slope_w_per_token: \(number(slope))", "intercept_w: \(number(intercept))"]
        case let .ramp(steady, deficit, tau):
            lines += [
                "steady_w: \(number(steady))", "initial_deficit_w: \(number(deficit))",
                "time_constant_s: \(number(tau))",
            ]
        }
        lines.append("source: \(string(source))")
        return lines.map { indent + $0 }.joined(separator: "\n")
    }

    /// The measured concurrency curve, as a `concurrency:` block, or nothing.
    private static func concurrency(_ curve: DecodeConcurrency?) -> String {
        guard let curve else { return "" }
        var out = "\nconcurrency:"
        if let slots = curve.slots { out += "\n  slots: \(slots)" }
        out += "\n  request_overhead_s: \(number(curve.requestOverheadS))"
        out += "\n  prefill_interference: \(number(curve.prefillInterference))"
        out += curve.stepFactors.keys.contains { $0 > 1 } ? "\n  steps:" : "\n  steps: []"
        for (b, factor) in curve.stepFactors.sorted(by: { $0.key < $1.key }) where b > 1 {
            out += "\n    - {sequences: \(b), step_factor: \(number(factor))"
            if let power = curve.powerFactors[b] { out += ", power_factor: \(number(power))" }
            out += "}"
        }
        if let mape = curve.fitMAPEPct { out += "\n  fit_mape_pct: \(number(mape))" }
        out += "\n  source: \(string(curve.source))"
        return out
    }

    /// A YAML float: nine significant digits, with a mantissa dot so every YAML reader sees a number.
    /// The measured parallel factors, one line each under `measured:`, or nothing.
    private static func measuredFactors(_ scaling: ParallelScaling) -> String {
        guard !scaling.measuredLatencyFactors.isEmpty else { return "" }
        return "\n  measured:"
            + scaling.measuredLatencyFactors.sorted { $0.key < $1.key }
            .map { "\n    - {samples: \($0.key), latency_factor: \(number($0.value))}" }.joined()
    }

    static func number(_ value: Double) -> String {
        let text = value.significantDigits(9)
        if let e = text.firstIndex(of: "e"), !text[..<e].contains(".") {
            return text[..<e] + ".0" + text[e...]
        }
        return text
    }

    /// A double-quoted YAML string (JSON's string escapes are valid YAML escapes).
    static func string(_ value: String) -> String { JSONValue.string(value).serialized() }
}
