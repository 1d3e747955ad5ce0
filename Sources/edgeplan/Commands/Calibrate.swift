import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import Foundation

struct Calibrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract:
            "Fit a model's latency, power and parallel scaling from measured traces; print hold-out MAPE; write a profile.",
        discussion: """
            Accepts JSON-lines traces (prefill and decode records), per-token traces (tbt_s) and the Orin artifact's
            prefill.json / decode_parameters.json. With -o DIR it writes DIR/models/<model>.<quant>.yaml, a device.yaml
            from the datasheet of --device when DIR has none, and the bundled accuracy tables cut to the models in DIR.
            """
    )

    @Option(name: .customLong("traces"), parsing: .upToNextOption, help: "Measurement files.") var traces: [String]
    @Option(help: "Model to fit, e.g. DSR1-Llama-8B.") var model: String
    @Option(
        help:
            "Quantization of the measured model (fp16, q8_0, q4_k_m, awq-w4, ...; default: what the collected trace records, else fp16)."
    ) var quant: String?
    @Option(help: "Device the traces come from (names the datasheet for a new profile), e.g. nvidia-h100-80gb.")
    var device: String?
    @Option(name: .shortAndLong, help: "Profile directory to write into.") var output: String?
    @Option(parsing: .unconditional, help: "Hold out every n-th measurement for testing.") var holdoutEvery: Int = 5
    @Option(help: "Family of a model the profile has never seen: reasoning, budget-aware or direct.") var family:
        String = "reasoning"
    @Option(
        help:
            "For a model with no accuracy tables yet: borrow this model's rows (MODEL, or MODEL/QUANT; default the same quantization where it has rows, else fp16) as its prior (marked borrowed) until `accuracy collect` measures its own."
    ) var accuracyLike: String?
    @OptionGroup var snapshot: SnapshotOptions
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard !traces.isEmpty else { throw ValidationError("give --traces FILE...") }
        guard (2...100).contains(holdoutEvery) else { throw ValidationError("--holdout-every must be within 2...100") }
        if let quant { _ = try parseQuantization(quant) }
        if let accuracyLike, let slash = accuracyLike.firstIndex(of: "/") {
            _ = try parseQuantization(String(accuracyLike[accuracyLike.index(after: slash)...]))
        }
    }

    func run() async throws {
        try await reportingErrors {
            // The collected trace's own quantization, where no --quant names one.
            let recorded = traces.lazy.compactMap { path -> Quantization? in
                guard let data = FileManager.default.contents(atPath: path),
                    let progress = try? CollectedTrace.progress(Array(data.prefix(65_536)), file: path),
                    progress.model?.lowercased() == model.lowercased()
                else { return nil }
                return progress.quantization
            }.first
            let quantization = try quant.map(parseQuantization) ?? recorded ?? .fp16
            var found: Set<VariantID> = []
            var observations: [Observation] = []
            var series: [TokenTimeSeries] = []
            let sizes = traces.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }
            var progress = ProgressBar(
                total: sizes.reduce(0, +) + 1,
                enabled: isatty(STDERR_FILENO) == 1 && (sizes.reduce(0, +) > 256 * 1024 || traces.count > 4)
            )
            for (path, size) in zip(traces, sizes) {
                let bytes = Array(try FileText.data(path, what: "trace"))
                // Per-token traces name their step times near the top.
                if String(decoding: bytes.prefix(4096), as: UTF8.self).contains("\"tbt_s\"") {
                    let run = try TokenTimeSeries.decode(bytes, file: path)
                    if run.model.lowercased() == model.lowercased() { series.append(run) }
                } else {
                    let decoded = try MeasurementDecoder.decode(bytes, file: path)
                    found.formUnion(decoded.map { VariantID(model: $0.model, quantization: $0.quantization) })
                    observations += decoded.filter {
                        $0.model.lowercased() == model.lowercased() && $0.quantization == quantization
                    }
                }
                progress.advance((path as NSString).lastPathComponent, by: size)
            }
            guard !observations.isEmpty || !series.isEmpty else {
                let present = found.sorted().map(\.description).joined(separator: ", ")
                throw EdgePlanError(
                    .unknownModel,
                    "no measurements of model '\(model)' (\(quantization)) in the given traces"
                        + (present.isEmpty ? "" : "; they measure \(present): give --model and --quant as they name it")
                )
            }
            let reference = try snapshot.profileSet()
            let targetDevice: DeviceProfile
            if let output, FileManager.default.fileExists(atPath: "\(output)/device.yaml") {
                targetDevice = try ProfileDecoder.decodeDevice(
                    .init(path: "device.yaml", text: String(contentsOfFile: "\(output)/device.yaml", encoding: .utf8))
                )
            } else if let device {
                targetDevice = try DeviceCatalog.device(named: device)
            } else {
                targetDevice = reference.device
            }
            // A model the profile has never seen starts from its shape (the collector's `model` record) and the
            // roofline; the fits below replace every latency and power figure they have measurements for.
            let collected = try traces.compactMap { path -> CollectedTrace.Progress? in
                guard let data = FileManager.default.contents(atPath: path),
                    String(decoding: data.prefix(8192), as: UTF8.self).contains("\"phase\": \"model\"")
                        || String(decoding: data.prefix(8192), as: UTF8.self).contains("\"phase\":\"model\"")
                else { return nil }
                return try CollectedTrace.progress(Array(data), file: path)
            }.first { $0.model?.lowercased() == model.lowercased() }
            let base: ModelVariant
            if let known = try? reference.variant(model: model, quantization: quantization) {
                base = known
            } else {
                guard let architecture = collected?.architecture else {
                    throw EdgePlanError(
                        .unknownModel,
                        "unknown model '\(model)': the profile does not have it, and none of the \(traces.count) trace files carries its shape (the `model` line `edgeplan profile collect` writes first: parameters, weight bytes, layers, key/value heads, head size), which a new model starts from. Give a trace from `profile collect`, or calibrate a model the profile has: \(Set(reference.variants.keys.map(\.model)).sorted().joined(separator: ", "))"
                    )
                }
                guard let family = ModelFamily(rawValue: family) else {
                    throw ValidationError(
                        "--family takes \(ModelFamily.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                let templates = reference.variants.values.filter { $0.family == family }.sorted { $0.id < $1.id }
                guard let template = templates.first(where: { $0.id.quantization == quantization }) ?? templates.first
                else {
                    throw EdgePlanError(
                        .unknownModel,
                        "the reference profile has no \(family.rawValue) model to take the vote model and length spread from"
                    )
                }
                base = Roofline.derive(
                    model: model,
                    quantization: quantization,
                    family: family,
                    parametersBillion: architecture.parameters / 1e9,
                    bytesPerWeight: architecture.bytesPerWeight,
                    kvCacheBytesPerToken: architecture.kvCacheBytesPerToken,
                    contextTokens: architecture.contextTokens,
                    device: targetDevice,
                    like: template
                )
            }
            var calibrator = ProfileCalibrator()
            calibrator.holdOutEvery = holdoutEvery
            // A collected trace's prompts are exact token counts that llama.cpp-style engines do not pad.
            if collected != nil { calibrator.prefillPaddingTokens = 1 }
            let label =
                collected.map { "\($0.provenance) on \(targetDevice.name)" } ?? device.map { "on \($0)" }
                ?? "from \(traces.count) trace files"
            let report = try calibrator.calibrate(
                base: base,
                device: targetDevice,
                observations: observations,
                series: series,
                label: label
            )
            progress.advance("fitted")
            // Decode by the sequences running at once, where the collection measured it.
            var variant = report.variant
            var steps: [ConcurrencyFitter.Step] = []
            var overheads: [Double] = []
            var interference: [Double] = []
            var slots: Int?
            for path in traces {
                guard let data = FileManager.default.contents(atPath: path) else { continue }
                let found = ConcurrencyFitter.records(Array(data), model: model)
                steps += found.steps
                overheads += found.overheadsS
                interference += found.interference
                slots = found.slots ?? slots
            }
            let concurrency = ConcurrencyFitter.fit(
                steps: steps,
                overheadsS: overheads,
                interference: interference,
                slots: slots,
                source: collected?.provenance ?? "measured"
            )
            if let concurrency { variant.concurrency = concurrency.curve }
            if json {
                var object = Self.json(report)
                if case let .object(fields) = object, let concurrency {
                    object = .object(fields + [("concurrency", Self.json(concurrency))])
                }
                printJSON(object)
            } else {
                Self.print(report)
                if let concurrency { Self.print(concurrency) }
            }
            if let output { try write(variant, to: output) }
        }
    }

    /// Writes the variant, the device (when the directory has none) and the accuracy tables cut to the models present,
    /// all or nothing: the whole profile as it would be is checked in memory first, and nothing is written when it
    /// does not pass (a second model's failed calibration left the first one's profile unloadable before).
    private func write(_ variant: ModelVariant, to directory: String) throws {
        let manager = FileManager.default
        let devicePath = "\(directory)/device.yaml"
        var pending: [(path: String, text: String)] = []
        if !manager.fileExists(atPath: devicePath) {
            guard let device else {
                throw ValidationError("\(directory) has no device.yaml: name the device with --device")
            }
            pending.append(("device.yaml", ProfileEncoder.device(try DeviceCatalog.device(named: device))))
        } else if let device {
            let existing = try ProfileDecoder.decodeDevice(
                .init(path: devicePath, text: String(contentsOfFile: devicePath, encoding: .utf8))
            )
            guard existing.name == device.lowercased() else {
                throw ValidationError("\(devicePath) describes \(existing.name), not --device \(device)")
            }
        }
        let modelPath = "models/\(variant.id.fileStem).yaml"
        pending.append((modelPath, ProfileEncoder.variant(variant)))
        let existing = manager.fileExists(atPath: directory) ? try ProfileStore.files(in: directory) : []
        func merged() -> [ProfileDecoder.File] {
            let replaced = Set(pending.map(\.path))
            return existing.filter { !replaced.contains($0.path) } + pending.map { .init(path: $0.path, text: $0.text) }
        }
        // Accuracy belongs to the model, not the device: carry the bundled tables over, cut to the models present.
        let present: [VariantID]
        do {
            present = try merged().filter { $0.path.hasPrefix("models/") }.map {
                try ProfileDecoder.decodeVariant($0).id
            }
        } catch let error as EdgePlanError {
            throw EdgePlanError(
                error.code,
                "\(error.message); the profile with this calibration would not load: nothing was written",
                file: error.file,
                line: error.line,
                field: error.field
            )
        }
        for bundled in try ProfileStore.load(nil).accuracy.values {
            // Tables a profile already holds (collected, or borrowed before) are its own: only add to them. The rows
            // to borrow come from the bundled table, which a profile's copy may have cut to its own models.
            var table = bundled
            let relative = "accuracy/\(table.task).yaml"
            if let text = existing.first(where: { $0.path == relative })?.text {
                table = try ProfileDecoder.decodeAccuracy(.init(path: relative, text: text))
            }
            if let like = accuracyLike, !table.records.contains(where: { $0.variant == variant.id }) {
                // A lender's rows at the quantization named, else at this variant's where it has them, else at fp16
                // (a quantization with no accuracy of its own borrows the full-width weights' until it is measured).
                let parts = like.split(separator: "/", maxSplits: 1).map(String.init)
                let lenderRows = (bundled.records + table.records).filter {
                    $0.variant.model.lowercased() == parts[0].lowercased() && $0.variant != variant.id
                        && !$0.source.hasPrefix("borrowed")
                }
                let lenderQuantization =
                    try parts.count > 1
                    ? parseQuantization(parts[1])
                    : lenderRows.contains { $0.variant.quantization == variant.id.quantization }
                        ? variant.id.quantization : .fp16
                var seen: Set<String> = []
                let borrowed = lenderRows.filter {
                    $0.variant.quantization == lenderQuantization
                        && seen.insert("\($0.mode.rawValue)|\($0.budgetTokens ?? -1)|\($0.capped)").inserted
                }
                let lender = "\(parts[0])/\(lenderQuantization)"
                table.records += borrowed.map { record in
                    var record = record
                    record.variant = variant.id
                    record.source =
                        "borrowed from \(lender) as a prior until accuracy collect measures \(variant.id): "
                        + record.source
                    return record
                }
            }
            let kept = table.records.filter { present.contains($0.variant) }
            guard !kept.isEmpty else { continue }
            pending.append((relative, ProfileEncoder.accuracy(table) { present.contains($0) }))
        }
        let problems = ProfileChecker.check(merged())
        for problem in problems { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
        if problems.contains(where: { $0.severity == .error }) {
            throw EdgePlanError.invalidFile(
                "the profile with this calibration would not pass profile check: nothing was written",
                file: directory
            )
        }
        try manager.createDirectory(atPath: "\(directory)/models", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: "\(directory)/accuracy", withIntermediateDirectories: true)
        for file in pending { try AtomicFile.write(file.text, to: "\(directory)/\(file.path)") }
        Swift.print(
            "wrote \(directory)/\(modelPath); profile check: \(problems.isEmpty ? "ok" : "\(problems.count) warnings")"
        )
    }

    static func print(_ fit: ConcurrencyFitter.Fit) {
        let curve = fit.curve
        Swift.print(
            "decode by sequences running at once (\(curve.slots.map { "\($0) slots" } ?? "slots unknown")): request overhead \(format(curve.requestOverheadS * 1000, 1)) ms, a prompt mid-decode slows a step by \(format(curve.prefillInterference * 100, 1)) %"
        )
        Swift.print("sequences".padded(12) + "step factor  inputs  held-out MAPE  power factor")
        for row in fit.rows {
            Swift.print(
                "\(row.sequences)".padded(12) + format(row.factor, 3).padded(13) + "\(row.inputs)".padded(8)
                    + (row.heldOutMAPEPct.map { format($0, 2) + " %" } ?? "-").padded(15)
                    + (curve.powerFactors[row.sequences].map { format($0, 3) } ?? "-")
            )
        }
        Swift.print(
            "  held-out MAPE of step factors across input lengths: \(curve.fitMAPEPct.map { format($0, 2) + " %" } ?? "not measured (one input length)")"
        )
    }

    static func json(_ fit: ConcurrencyFitter.Fit) -> JSONValue {
        .fields([
            "slots": fit.curve.slots.map(JSONValue.int) ?? .null,
            "requestOverheadMs": .number(fit.curve.requestOverheadS * 1000),
            "prefillInterference": .number(fit.curve.prefillInterference),
            "heldOutMapePct": fit.curve.fitMAPEPct.map(JSONValue.number) ?? .null,
            "steps": .array(
                fit.rows.map { row in
                    .fields([
                        "sequences": .int(row.sequences), "stepFactor": .number(row.factor), "inputs": .int(row.inputs),
                        "heldOutMapePct": row.heldOutMAPEPct.map(JSONValue.number) ?? .null,
                        "powerFactor": fit.curve.powerFactors[row.sequences].map(JSONValue.number) ?? .null,
                    ])
                }
            ),
        ])
    }

    static func print(_ report: ProfileCalibrator.Report) {
        Swift.print("\(report.variant.id)")
        Swift.print("phase".padded(26) + "fitted  held-out  fit MAPE  hold-out MAPE  outliers")
        for phase in report.phases {
            Swift.print(
                phase.phase.padded(26)
                    + String(
                        format: "%6d  %8d  %7.2f%%  %12.2f%%  %8d",
                        phase.fitted,
                        phase.heldOut,
                        phase.fitMAPE,
                        phase.heldOutMAPE,
                        phase.rejectedOutliers
                    )
            )
            Swift.print("  " + phase.coefficients.map { "\($0.0)=\($0.1.significantDigits(6))" }.joined(separator: " "))
        }
        if !report.kept.isEmpty {
            Swift.print(
                "not measured here, kept from the base profile (\(report.variant.calibration.rawValue) as a whole):"
            )
            for (figure, why) in report.kept { Swift.print("  \(figure): \(why)") }
        }
        if let regimes = report.regimes {
            let delays = regimes.changes.map(\.change.delay).sorted()
            Swift.print(
                "per-token traces: \(regimes.changes.count) regime changes flagged; detection delay median \(delays.isEmpty ? 0 : delays[delays.count / 2]) tokens, max \(delays.last ?? 0) tokens"
            )
            Swift.print("regime".padded(10) + "n (ms/token)  segments  tokens  hold-out MAPE  one-fit MAPE")
            for (index, regime) in regimes.regimes.enumerated() {
                Swift.print(
                    "\(index + 1)".padded(10)
                        + String(
                            format: "%12.2f  %8d  %6d  %12.2f%%  %11.2f%%",
                            regime.nSPerToken * 1000,
                            regime.segments,
                            regime.tokens,
                            regime.heldOutMAPE,
                            regime.naiveMAPE
                        )
                        + (regime.heldOutCheckpoints == 0 ? "  (too short to hold out)" : "")
                )
            }
            Swift.print(
                String(
                    format:
                        "decode per regime: hold-out MAPE %.2f%%; one fit for all regimes: %.2f%% (m = %@ s/token^2 shared)",
                    regimes.heldOutMAPE,
                    regimes.naiveHeldOutMAPE,
                    regimes.mSPerToken2.significantDigits(4)
                )
            )
        }
    }

    static func json(_ report: ProfileCalibrator.Report) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("variant", .string(report.variant.id.description)),
            (
                "phases",
                .array(
                    report.phases.map { phase in
                        .fields([
                            "phase": .string(phase.phase), "fitted": .int(phase.fitted), "heldOut": .int(phase.heldOut),
                            "fitMapePct": .number(phase.fitMAPE), "holdoutMapePct": .number(phase.heldOutMAPE),
                            "rejectedOutliers": .int(phase.rejectedOutliers),
                            "coefficients": .object(phase.coefficients.map { ($0.0, JSONValue.number($0.1)) }),
                        ])
                    }
                )
            ),
            ("calibration", .string(report.variant.calibration.rawValue)),
            (
                "kept",
                .array(report.kept.map { .fields(["figure": .string($0.figure), "why": .string($0.why)]) })
            ),
        ]
        if let regimes = report.regimes {
            fields.append(
                (
                    "regimes",
                    .fields([
                        "mSPerToken2": .number(regimes.mSPerToken2),
                        "heldOutMapePct": .number(regimes.heldOutMAPE),
                        "singleFitHeldOutMapePct": .number(regimes.naiveHeldOutMAPE),
                        "changes": .array(
                            regimes.changes.map {
                                .fields([
                                    "run": .int($0.run), "onset": .int($0.change.onset), "alarm": .int($0.change.alarm),
                                    "delayTokens": .int($0.change.delay), "ratio": .number($0.change.ratio),
                                ])
                            }
                        ),
                        "levels": .array(
                            regimes.regimes.map {
                                .fields([
                                    "nSPerToken": .number($0.nSPerToken), "segments": .int($0.segments),
                                    "tokens": .int($0.tokens), "heldOutMapePct": .number($0.heldOutMAPE),
                                    "heldOutCheckpoints": .int($0.heldOutCheckpoints),
                                    "singleFitMapePct": .number($0.naiveMAPE),
                                ])
                            }
                        ),
                    ])
                )
            )
        }
        return .object(fields)
    }
}
