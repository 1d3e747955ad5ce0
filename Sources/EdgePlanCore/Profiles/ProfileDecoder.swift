/// Turns the text of a profile directory's files into a ``ProfileSet``.
///
/// Layout: `device.yaml`, `models/*.yaml` (one model variant each), `accuracy/*.yaml` (one task class each).
/// Every field carries its unit in its name; unknown fields are errors.
public enum ProfileDecoder {
    /// A file of a profile directory: its path relative to the directory, and its text.
    public struct File: Sendable {
        public var path: String
        public var text: String
        public init(path: String, text: String) {
            self.path = path
            self.text = text
        }
    }

    public static func decode(_ files: [File], directoryName: String = "profile") throws -> ProfileSet {
        guard let deviceFile = files.first(where: { $0.path == "device.yaml" }) else {
            throw EdgePlanError.invalidFile("profile has no device.yaml", file: directoryName)
        }
        let device = try decodeDevice(deviceFile)
        var variants: [VariantID: ModelVariant] = [:]
        var tables: [String: AccuracyTable] = [:]
        for file in files.sorted(by: { $0.path < $1.path }) {
            if file.path.hasPrefix("models/") {
                let variant = try decodeVariant(file)
                if variants[variant.id] != nil {
                    throw EdgePlanError.invalidFile("duplicate model variant \(variant.id)", file: file.path)
                }
                variants[variant.id] = variant
            } else if file.path.hasPrefix("accuracy/") {
                let table = try decodeAccuracy(file)
                if tables[table.task] != nil {
                    throw EdgePlanError.invalidFile("duplicate accuracy table for task \(table.task)", file: file.path)
                }
                tables[table.task] = table
            }
        }
        guard !variants.isEmpty else {
            throw EdgePlanError.invalidFile("profile has no model variants under models/", file: directoryName)
        }
        for table in tables.values {
            for (index, record) in table.records.enumerated() where variants[record.variant] == nil {
                throw EdgePlanError.invalidFile(
                    "accuracy row names \(record.variant), which has no model file",
                    file: "accuracy/\(table.task).yaml",
                    field: "rows[\(index)].model"
                )
            }
        }
        return ProfileSet(device: device, variants: variants, accuracy: tables, version: contentHash(files))
    }

    /// A short, stable hash of the files' paths and contents (FNV-1a, 64 bits), always 16 hex digits.
    public static func contentHash(_ files: [File]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for file in files.sorted(by: { $0.path < $1.path }) {
            for byte in file.path.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            for byte in file.text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// Decodes a `device.yaml` file.
    public static func decodeDevice(_ file: File) throws -> DeviceProfile {
        var root = try YAMLObject.parse(file.text, file: file.path)
        try expectKind(&root, "device")
        var modes: [DeviceProfile.PowerMode] = []
        for var mode in try root.objects("power_modes") {
            modes.append(
                .init(
                    name: try mode.string("name"),
                    nvpmodelID: try mode.optionalInt("nvpmodel_id", in: 0...99),
                    budgetW: try mode.optionalDouble("budget_w", in: 1...10_000)
                )
            )
            try mode.finish()
        }
        var cost = try root.object("cost")
        let device = DeviceProfile(
            name: try root.string("name"),
            displayName: try root.string("display_name"),
            memoryGiB: try root.double("memory_gib", in: 0.1...100_000),
            usableMemoryGiB: try root.double("usable_memory_gib", in: 0.1...100_000),
            memoryBandwidthGBps: try root.double("memory_bandwidth_gbps", in: 0.1...100_000),
            peakFP16TFLOPS: try root.double("peak_fp16_tflops", in: 0.01...100_000),
            peakINT8TOPS: try root.double("peak_int8_tops", in: 0.01...100_000),
            idlePowerW: try root.double("idle_power_w", in: 0...10_000),
            powerModes: modes,
            calibratedPowerMode: try root.string("calibrated_power_mode"),
            electricityUSDPerKWh: try cost.double("electricity_usd_per_kwh", in: 0...100),
            hardwareUSDPerHour: try cost.double("hardware_usd_per_hour", in: 0...1000),
            source: try root.string("source")
        )
        try cost.finish()
        try root.finish()
        guard device.usableMemoryGiB <= device.memoryGiB else {
            throw root.error(
                "usable_memory_gib",
                "usable memory \(device.usableMemoryGiB) GiB exceeds memory_gib \(device.memoryGiB)"
            )
        }
        return device
    }

    /// Decodes one `models/*.yaml` file.
    public static func decodeVariant(_ file: File) throws -> ModelVariant {
        var root = try YAMLObject.parse(file.text, file: file.path)
        try expectKind(&root, "model-variant")
        let model = try root.string("model")
        let quantization = try quantization(&root)
        let family = try enumValue(ModelFamily.self, &root, "family")
        let calibration = try enumValue(Calibration.self, &root, "calibration")

        var prefill = try root.object("prefill")
        var prefillLatencyObject = try prefill.object("latency")
        let prefillLatency = try decodePrefillLatency(&prefillLatencyObject)
        let referenceObject = try prefill.optionalObject("latency_reference")
        let reference = try referenceObject.map { object in
            var object = object
            return try decodePrefillLatency(&object)
        }
        var prefillPowerObject = try prefill.object("power")
        let prefillPower = try decodePower(&prefillPowerObject)
        let prefillPowerSource = try prefillPowerObject.string("source")
        try prefillPowerObject.finish()
        try prefill.finish()

        var decode = try root.object("decode")
        var decodeLatencyObject = try decode.object("latency")
        let decodeLatency = DecodeLatencyModel(
            mSPerToken2: try decodeLatencyObject.double("m_s_per_token2", in: -1e-3...1e-3),
            nSPerToken: try decodeLatencyObject.double("n_s_per_token", in: 1e-6...100),
            source: try decodeLatencyObject.string("source")
        )
        try decodeLatencyObject.finish()
        var decodePowerObject = try decode.object("power")
        let decodePower = try decodePower(&decodePowerObject)
        let decodePowerSource = try decodePowerObject.string("source")
        try decodePowerObject.finish()
        try decode.finish()

        var parallelObject = try root.object("parallel")
        var measured: [Int: Double] = [:]
        if parallelObject.has("measured") {
            for var point in try parallelObject.objects("measured") {
                let samples = try point.int("samples", in: 2...1024)
                guard measured[samples] == nil else {
                    throw point.error("samples", "samples \(samples) is measured twice")
                }
                measured[samples] = try point.double("latency_factor", in: 0.01...1000)
                try point.finish()
            }
        }
        let parallel = ParallelScaling(
            latencySlopePerSample: try parallelObject.double("latency_slope_per_sample", in: 0...10),
            powerGainPerDoubling: try parallelObject.double("power_gain_per_doubling", in: 0...10),
            measuredLatencyFactors: measured,
            source: try parallelObject.string("source")
        )
        try parallelObject.finish()

        var concurrency: DecodeConcurrency?
        if var curve = try root.optionalObject("concurrency") {
            var steps: [Int: Double] = [:]
            var powers: [Int: Double] = [:]
            for var step in try curve.objects("steps") {
                let b = try step.int("sequences", in: 2...4096)
                guard steps[b] == nil else { throw step.error("sequences", "\(b) sequences are measured twice") }
                steps[b] = try step.double("step_factor", in: 0.01...1000)
                if let power = try step.optionalDouble("power_factor", in: 0.01...1000) { powers[b] = power }
                try step.finish()
            }
            concurrency = DecodeConcurrency(
                stepFactors: steps,
                slots: try curve.optionalInt("slots", in: 1...4096),
                requestOverheadS: try curve.double("request_overhead_s", in: 0...60),
                // A prompt of thousands of tokens between two steps of a small model on a CPU stalls them by
                // hundreds of steps (136 measured on two cores): the bound only keeps out garbage.
                prefillInterference: try curve.double("prefill_interference", in: 0...10_000),
                powerFactors: powers,
                source: try curve.string("source"),
                fitMAPEPct: try curve.optionalDouble("fit_mape_pct", in: 0...1000)
            )
            try curve.finish()
        }

        var votingObject = try root.object("voting")
        var anchors: [VotingModel.Anchor] = []
        for var anchor in try votingObject.objects("anchors") {
            anchors.append(
                .init(
                    budgetTokens: try anchor.double("budget_tokens", in: 1...1_000_000),
                    concentration: try anchor.double("concentration", in: 0.01...10_000),
                    unansweredAtCap: try anchor.double("unanswered_at_cap", in: 0...1)
                )
            )
            try anchor.finish()
        }
        guard !anchors.isEmpty else { throw votingObject.error("anchors", "needs at least one anchor") }
        let voting = VotingModel(
            anchors: anchors,
            fitErrorPoints: try votingObject.double("fit_error_points", in: 0...100),
            source: try votingObject.string("source")
        )
        try votingObject.finish()

        var lengthObject = try root.object("output_length")
        let spread = OutputLengthSpread(
            coefficientOfVariation: try lengthObject.double("coefficient_of_variation", in: 0...5),
            source: try lengthObject.string("source")
        )
        try lengthObject.finish()

        let variant = ModelVariant(
            id: VariantID(model: model, quantization: quantization),
            family: family,
            calibration: calibration,
            engineModel: try root.string("engine_model"),
            parametersBillion: try root.double("parameters_billion", in: 0.01...10_000),
            bytesPerWeight: try root.double("bytes_per_weight", in: 0.05...8),
            kvCacheBytesPerToken: try root.double("kv_cache_bytes_per_token", in: 1...1e9),
            runtimeOverheadGiB: try root.double("runtime_overhead_gib", in: 0...1000),
            contextTokens: try root.int("context_tokens", in: 1...10_000_000),
            prefillLatency: prefillLatency,
            prefillLatencyReference: reference,
            prefillPower: prefillPower,
            prefillPowerSource: prefillPowerSource,
            decodeLatency: decodeLatency,
            decodePower: decodePower,
            decodePowerSource: decodePowerSource,
            parallel: parallel,
            voting: voting,
            outputLength: spread,
            concurrency: concurrency
        )
        try root.finish()
        return variant
    }

    private static func decodePrefillLatency(_ object: inout YAMLObject) throws -> PrefillLatencyModel {
        let model = PrefillLatencyModel(
            aSPerToken2: try object.double("a_s_per_token2", in: -1e-3...1e-3),
            bSPerToken: try object.double("b_s_per_token", in: -1...1),
            cS: try object.double("c_s", in: -10...100),
            paddingTokens: try object.optionalInt("padding_tokens", in: 1...4096) ?? 128,
            source: try object.string("source")
        )
        try object.finish()
        return model
    }

    private static func decodePower(_ object: inout YAMLObject) throws -> PowerCurve {
        let form = try object.string("form")
        switch form {
        case "piecewise-log":
            return .piecewiseLog(
                thresholdTokens: try object.double("threshold_tokens", in: 0...1e7),
                constantW: try object.double("constant_w", in: 0...10_000),
                logSlopeW: try object.double("log_slope_w", in: -10_000...10_000),
                logInterceptW: try object.double("log_intercept_w", in: -10_000...10_000)
            )
        case "linear":
            return .linear(
                slopeWPerToken: try object.double("slope_w_per_token", in: -100...100),
                interceptW: try object.double("intercept_w", in: 0...10_000)
            )
        case "ramp":
            return .ramp(
                steadyW: try object.double("steady_w", in: 0...10_000),
                initialDeficitW: try object.double("initial_deficit_w", in: 0...10_000),
                timeConstantS: try object.double("time_constant_s", in: 1e-6...10_000)
            )
        default:
            throw object.error("form", "unknown power form '\(form)'; use piecewise-log, linear or ramp")
        }
    }

    public static func decodeAccuracy(_ file: File) throws -> AccuracyTable {
        var root = try YAMLObject.parse(file.text, file: file.path)
        try expectKind(&root, "accuracy-table")
        let task = try root.string("task")
        var records: [AccuracyRecord] = []
        for var row in try root.objects("rows") {
            let model = try row.string("model")
            let quantization = try quantization(&row)
            let mode = try enumValue(LengthMode.self, &row, "mode")
            let budget = try row.optionalInt("budget_tokens", in: 1...1_000_000)
            let capped = try row.bool("capped", default: mode == .hard)
            if (mode == .soft || mode == .hard || mode == .thinkingBudget) && budget == nil {
                throw row.error("budget_tokens", "\(mode.rawValue) mode needs budget_tokens")
            }
            if capped && budget == nil { throw row.error("capped", "a capped row needs budget_tokens") }
            let accuracy = try row.double("accuracy_pct", in: 0...100) / 100
            let tokens = try row.double("mean_output_tokens", in: 0.1...10_000_000)
            if capped, let budget, tokens > Double(budget) + 0.5 {
                throw row.error("mean_output_tokens", "mean \(tokens) exceeds the hard cap \(budget)")
            }
            records.append(
                AccuracyRecord(
                    variant: VariantID(model: model, quantization: quantization),
                    mode: mode,
                    budgetTokens: budget,
                    capped: capped,
                    accuracy: accuracy,
                    meanOutputTokens: tokens,
                    meanLatencyS: try row.optionalDouble("mean_latency_s", in: 0.001...1_000_000),
                    source: try row.string("source")
                )
            )
            try row.finish()
        }
        let table = AccuracyTable(
            task: task,
            description: try root.string("description"),
            source: try root.string("source"),
            typicalInputTokens: try root.int("typical_input_tokens", in: 1...10_000_000),
            answerOptions: try root.int("answer_options", in: 2...1_000_000),
            questions: try root.int("questions", in: 1...100_000_000),
            records: records
        )
        try root.finish()
        return table
    }

    private static func expectKind(_ object: inout YAMLObject, _ kind: String) throws {
        try object.expectKind(kind)
    }

    private static func quantization(_ object: inout YAMLObject) throws -> Quantization {
        let raw = try object.string("quantization")
        guard let value = Quantization(rawValue: raw) else {
            throw object.error("quantization", Quantization.rule(raw))
        }
        return value
    }

    private static func enumValue<E: RawRepresentable & CaseIterable>(
        _ type: E.Type,
        _ object: inout YAMLObject,
        _ key: String
    ) throws -> E where E.RawValue == String {
        let raw = try object.string(key)
        guard let value = E(rawValue: raw) else {
            throw object.error(
                key,
                "unknown value '\(raw)'; use one of \(E.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return value
    }
}
