import ArgumentParser
import EdgePlanCore
import EdgePlanDaemon
import EdgePlanEngine
import Foundation

/// `edgeplan profile collect`: measures a model on a running engine and writes a trace that `calibrate` reads.
struct Collect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Measure a model on a running engine: idle power, prefill, decode per token, parallel scaling.",
        discussion: """
            Writes a JSON-lines trace (-o) that `edgeplan calibrate` reads. Each measured point is appended and made
            durable before the next starts: a collection stopped by Ctrl-C, SIGKILL or --time-budget resumes where it
            stopped when run again with the same -o, and no point is lost or measured twice. The power rails (INA3221,
            NVML, RAPL) are sampled throughout and each phase's energy is attributed from them.
            """
    )

    @Option(help: "The engine: http://HOST:PORT or unix:/PATH.") var engine: String = "http://127.0.0.1:8080"
    @Option(help: "Engine kind: \(EngineKind.allCases.map(\.rawValue).joined(separator: ", ")).") var engineKind:
        String = "llama-server"
    @Option(help: "The engine's version, when it does not report one (a build from source says `unknown`).")
    var engineVersion: String?
    @Option(help: "Model name for the profile.") var model: String
    @Option(help: "Model name the engine serves (default: --model).") var engineModel: String?
    @Option(name: .shortAndLong, help: "Trace file to write, or to resume.") var output: String
    @Option(parsing: .unconditional, help: "Context to sweep up to, tokens (default: the engine's context per slot).")
    var context: Int?
    @Option(
        parsing: .unconditional,
        help:
            "Tokens of each decode run (default 2,048, or what the engine's slot holds past the shortest decode input)."
    ) var decodeTokens: Int?
    @Option(help: "Input lengths of the decode runs, comma-separated (two suffice: `profile design` replays why).")
    var decodeInputs: String = "128,1024"
    @Option(help: "Parallel sampling factors, comma-separated.") var parallel: String = "1,2,4,8,16,32"
    @Option(parsing: .unconditional, help: "Output tokens of each parallel run.") var parallelTokens: Int = 128
    @Option(
        help:
            "Sequences decoding at once to time a decode step at (separate requests with prompts of their own), comma-separated; `none` to skip. Counts past the engine's slots are left out."
    ) var concurrency: String = "1,2,4,8,16,32"
    @Option(parsing: .unconditional, help: "Output tokens of each concurrency run.") var concurrencyTokens: Int = 128
    @Option(help: "Input lengths of the concurrency runs, comma-separated (two or more give a held-out error).")
    var concurrencyInputs: String = "128,1024"
    @Option(parsing: .unconditional, help: "Repeats of each prefill length.") var repeats: Int = 3
    @Option(parsing: .unconditional, help: "Warm-up runs, not recorded.") var warmups: Int = 2
    @Option(parsing: .unconditional, help: "Longest prefill to measure, tokens (default: the context).") var maxPrefill:
        Int?
    @Option(help: "Stop starting new points after this long (e.g. 10min); run again to go on.") var timeBudget: String?
    @Option(help: "Idle power sampling before the sweep (with rails).") var idle: String = "5s"
    @Option(help: "Power rails: auto, none, or \(PowerRailKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var rails: String = "auto"
    @Option(help: "Root for sysfs paths (rails, power mode).") var sysfsRoot: String = "/"
    @Option(
        help:
            "The model's GGUF file, for its shape (default: the file the engine names, when it is on this machine)."
    )
    var gguf: String?
    @Option(
        help:
            "The weights' quantization (fp16, q8_0, q4_k_m, awq-w4, fp8, ...; default: the GGUF file's type, else fp16)."
    )
    var quant: String?
    @Option(parsing: .unconditional, help: "Transformer layers, when the engine does not say.") var layers: Int?
    @Option(parsing: .unconditional, help: "Key/value heads per layer, when the engine does not say.") var kvHeads: Int?
    @Option(parsing: .unconditional, help: "Dimension of one attention head, when the engine does not say.")
    var headDim: Int?
    @Flag(help: "Print the design and its expected device time, measure nothing.") var dryRun = false

    func validate() throws {
        do {
            _ = try EngineKind.named(engineKind)
            _ = try EngineEndpoint(engine)
        } catch let error as EdgePlanError {
            throw ValidationError(error.message)
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        if let timeBudget { _ = try QuantityParser.seconds(timeBudget, field: "--time-budget") }
        _ = try QuantityParser.seconds(idle, field: "--idle", allowZero: true)
        _ = try Self.integers(decodeInputs, "--decode-inputs")
        _ = try Self.integers(parallel, "--parallel")
        if concurrency != "none" { _ = try Self.integers(concurrency, "--concurrency") }
        _ = try Self.integers(concurrencyInputs, "--concurrency-inputs")
        if let quant { _ = try parseQuantization(quant) }
    }

    /// The quantization a collection records: the model file's own type, or --quant where the file says none (or is
    /// not on this machine), else fp16; a --quant the file contradicts is an error, since the trace would be filed
    /// under the wrong variant.
    static func quantization(flag: String?, file: Quantization?) throws -> (value: Quantization, source: String) {
        let named = try flag.map(parseQuantization)
        switch (named, file) {
        case let (named?, file?) where named != file:
            throw ValidationError(
                "--quant \(named) but the model file is \(file) (its general.file_type): leave --quant out, or serve the \(named) file"
            )
        case let (_, file?): return (file, "from the GGUF file's type")
        case let (named?, nil): return (named, "from --quant")
        case (nil, nil): return (.fp16, "assumed: the model file does not say; give --quant")
        }
    }

    static func integers(_ text: String, _ flag: String) throws -> [Int] {
        try text.split(separator: ",").map {
            guard let value = Int($0.trimmingCharacters(in: .whitespaces)), value > 0 else {
                throw ValidationError("\(flag) takes positive whole numbers separated by commas, not '\($0)'")
            }
            return value
        }
    }

    func run() async throws {
        try await reportingErrors {
            let kind = try EngineKind.named(engineKind)
            let capabilities = EngineCapabilities.of(kind)
            let client = EngineClient(
                endpoint: try EngineEndpoint(engine),
                capabilities: capabilities,
                model: engineModel ?? model
            )
            let described = try await client.describe()
            let engineInfo = EngineInfo(described, kind: kind)
            let contextTokens = min(context ?? engineInfo.contextPerSlot ?? 4096, engineInfo.contextPerSlot ?? Int.max)
            if let asked = context, let slot = engineInfo.contextPerSlot, asked > slot {
                print("--context \(asked) is past the engine's \(slot) tokens per slot: measuring up to \(slot)")
            }
            let asked = try Self.integers(parallel, "--parallel")
            if let slots = engineInfo.slots, asked.contains(where: { $0 > slots }) {
                print(
                    "the engine runs \(slots) sequences at once: parallel factors past it (\(asked.filter { $0 > slots }.map(String.init).joined(separator: ", "))) are left out"
                )
            }
            let inputs = try Self.integers(decodeInputs, "--decode-inputs")
            // Unless told, decode runs are as long as the slot holds past the shortest decode input, up to 2,048.
            let decodeTokens = decodeTokens ?? max(1, min(2048, contextTokens - (inputs.min() ?? 0)))
            if self.decodeTokens == nil, decodeTokens < 2048 {
                print(
                    "decode runs of \(decodeTokens) tokens: the engine's slot holds \(contextTokens) (give --decode-tokens to choose)"
                )
            }
            let design = try SweepDesign.standard(
                contextTokens: contextTokens,
                decodeInputs: inputs,
                decodeTokens: decodeTokens,
                parallelFactors: try Self.integers(parallel, "--parallel"),
                parallelOutputTokens: parallelTokens,
                repeats: repeats,
                warmups: warmups,
                maxPrefillTokens: maxPrefill,
                slots: engineInfo.slots,
                concurrency: concurrency == "none" ? [] : try Self.integers(concurrency, "--concurrency"),
                concurrencyTokens: concurrencyTokens,
                concurrencyInputs: try Self.integers(concurrencyInputs, "--concurrency-inputs")
            )
            let (architecture, shapeSource, fileQuantization) = try engineInfo.shape(
                gguf: gguf,
                contextTokens: contextTokens,
                layers: layers,
                kvHeads: kvHeads,
                headDimension: headDim
            )
            let device = DeviceContext.read(SysfsRoot(sysfsRoot))
            var source: (any PowerRailSource)?
            if rails != "none" {
                let railKind: PowerRailKind? = rails == "auto" ? nil : PowerRailKind(rawValue: rails)
                if rails != "auto" && railKind == nil {
                    throw ValidationError(
                        "--rails takes auto, none, or \(PowerRailKind.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                do { source = try PowerRails.open(railKind, sysfsRoot: sysfsRoot) } catch  where rails == "auto" {
                    FileHandle.standardError.write(Data("no power rails: energies are not recorded (\(error))\n".utf8))
                }
            }
            let quantization = try Self.quantization(flag: quant, file: fileQuantization)
            let context = CollectedTrace.Context(
                engine: kind,
                engineVersion: engineVersion ?? engineInfo.version,
                model: model,
                quantization: quantization.value,
                powerMode: device.powerMode,
                gpuClockMHz: device.gpuFrequencyHz.map { $0 / 1e6 },
                rails: source?.description
            )
            print(
                "collecting \(model) on \(client.endpoint) (\(kind.rawValue) \(engineInfo.version)); \(design.points.count) points, context \(contextTokens)"
            )
            print("  " + architecture.summary + "; rails: \(source?.description ?? "none"); \(device.summary)")
            print("  shape: \(shapeSource)")
            print("  quantization: \(quantization.value) (\(quantization.source))")
            if dryRun {
                for point in design.points { print("  \(point.key)") }
                return
            }
            let sampler = source.map { RailSampler(source: $0, interval: 0.02) }
            sampler?.start()
            defer { sampler?.stop() }
            var collector = ProfileCollector(
                client: client,
                design: design,
                context: context,
                architecture: architecture,
                tracePath: output,
                promptTokenRange: engineInfo.promptTokenRange,
                energy: { start, end in sampler?.energy(from: start, to: end) },
                now: RailSampler.monotonicSeconds
            )
            collector.timeBudgetS = try timeBudget.map { try QuantityParser.seconds($0, field: "--time-budget") }
            collector.idleS = sampler == nil ? 0 : try QuantityParser.seconds(idle, field: "--idle", allowZero: true)
            collector.energySettleS = sampler == nil ? 0 : 0.08
            collector.slots = engineInfo.slots
            let bar = LockedProgress(total: design.points.count)
            let summary = try await collector.run { done, total, key in bar.update(done: done, label: key) }
            for warning in summary.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            print(
                "measured \(summary.measured) points in \(String(format: "%.1f", summary.deviceTimeS)) s of engine time; \(summary.skipped) already in \(output)"
                    + (summary.stoppedByBudget
                        ? "; stopped by --time-budget with \(summary.remaining) to go: run again to resume" : "")
                    + (summary.failed.isEmpty
                        ? ""
                        : "; \(summary.failed.count) failed and not recorded (\(summary.failed.joined(separator: ", "))): run again to measure them")
            )
            if !summary.failed.isEmpty { throw ExitStatus.tryAgain }
        }
    }
}

/// What the engine told about itself and the model it serves.
struct EngineInfo {
    var version: String
    var contextPerSlot: Int?
    var slots: Int?
    var parameters: Double?
    var sizeBytes: Double?
    var embedding: Int?
    var vocabulary: Int?
    /// The model file the engine loaded (llama-server's `/props` `model_path`).
    var modelPath: String?

    init(_ described: JSONValue, kind: EngineKind) {
        let props = described["/props"]
        modelPath = props?["model_path"]?.stringValue
        version = props?["build_info"]?.stringValue ?? "unknown"
        contextPerSlot = props?["default_generation_settings"]?["n_ctx"]?.intValue
        slots = props?["total_slots"]?.intValue
        if case let .array(models)? = described["/v1/models"]?["data"], let meta = models.first?["meta"] {
            parameters = meta["n_params"]?.doubleValue
            sizeBytes = meta["size"]?.doubleValue
            embedding = meta["n_embd"]?.intValue
            vocabulary = meta["n_vocab"]?.intValue
        }
    }

    /// Prompt token ids: past the first 300 (control and byte tokens in most vocabularies).
    var promptTokenRange: Range<Int> {
        let size = vocabulary ?? 32000
        return size > 600 ? 300..<size : 0..<size
    }

    /// The model's shape and where it came from: the GGUF header of `gguf` (or of the file the engine names, when
    /// it is on this machine), else the flags, else an estimate from the parameter count that says so.
    func shape(
        gguf: String?,
        contextTokens: Int,
        layers: Int?,
        kvHeads: Int?,
        headDimension: Int?
    ) throws -> (CollectedTrace.Architecture, String, Quantization?) {
        let path = gguf ?? modelPath.flatMap { FileManager.default.isReadableFile(atPath: $0) ? $0 : nil }
        if let path {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw EdgePlanError(.io, "cannot read the model file", file: path)
            }
            defer { try? handle.close() }
            // The metadata and the tensor table lead the file; a vocabulary of 150,000 tokens takes a few MB.
            let prefix = [UInt8](handle.readData(ofLength: 64 << 20))
            let header = try GGUFHeader.parse(prefix, file: path)
            let fileBytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.doubleValue
            let ignored = [("--layers", layers), ("--kv-heads", kvHeads), ("--head-dim", headDimension)]
                .filter { $0.1 != nil }.map(\.0)
            return (
                header.architecture(weightBytes: sizeBytes ?? fileBytes ?? 0, contextTokens: contextTokens),
                "from the GGUF header of \(path) (\(header.architecture), \(header.heads) heads, \(header.kvHeads) key/value heads of \(header.headDimension))"
                    + (ignored.isEmpty ? "" : "; \(ignored.joined(separator: ", ")) ignored: the file says"),
                header.fileType.flatMap(Quantization.ggufFileType)
            )
        }
        let estimated = [("layers", layers), ("key/value heads", kvHeads), ("head size", headDimension)]
            .filter { $0.1 == nil }.map(\.0)
        let architecture = try architecture(
            contextTokens: contextTokens,
            layers: layers,
            kvHeads: kvHeads,
            headDimension: headDimension
        )
        let place =
            modelPath.map { "the engine's model file \($0) is not on this machine" } ?? "the engine names no model file"
        return (
            architecture,
            estimated.isEmpty
                ? "from --layers, --kv-heads and --head-dim (\(place))"
                : "ESTIMATED \(estimated.joined(separator: ", ")) from the parameter count (\(place)): give --gguf, or --layers, --kv-heads and --head-dim",
            nil
        )
    }

    func architecture(
        contextTokens: Int,
        layers: Int?,
        kvHeads: Int?,
        headDimension: Int?
    ) throws -> CollectedTrace.Architecture {
        guard let parameters, let sizeBytes else {
            throw EdgePlanError.invalidInput(
                "the engine does not report the model's parameters and size (/v1/models meta): give them with a profile written by hand",
                field: "engine"
            )
        }
        let embedding = embedding ?? 4096
        // Without the engine's word on layers and heads, the usual transformer (12 x embedding^2 parameters a layer,
        // as many key/value heads as query heads) bounds the KV cache from above.
        let layers = layers ?? max(1, Int((parameters / (12 * Double(embedding * embedding))).rounded()))
        let headDimension = headDimension ?? 128
        let kvHeads = kvHeads ?? max(1, embedding / headDimension)
        return CollectedTrace.Architecture(
            parameters: parameters,
            layers: layers,
            embedding: embedding,
            kvHeads: kvHeads,
            headDimension: headDimension,
            contextTokens: contextTokens,
            weightBytes: sizeBytes
        )
    }
}

extension CollectedTrace.Architecture {
    var summary: String {
        String(
            format: "%.1f M parameters, %.0f MB of weights, %d layers, KV %.0f KiB/token",
            parameters / 1e6,
            weightBytes / 1e6,
            layers,
            kvCacheBytesPerToken / 1024
        )
    }
}

/// A progress bar that the collector's callback may update from any task.
final class LockedProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var bar: ProgressBar
    private var done = 0
    private var first: Int?
    private let started = Date()

    init(total: Int) { bar = ProgressBar(total: total) }

    /// `done` points of `total`; the ETA is this run's pace over what is left.
    func update(done: Int, label: String) {
        lock.lock()
        defer { lock.unlock() }
        let since = first ?? (done - 1)
        first = since
        let elapsed = Date().timeIntervalSince(started)
        let pace = elapsed / Double(max(1, done - since))
        let left = Int(pace * Double(bar.total - done))
        bar.advance(label, by: max(0, done - self.done), eta: String(format: "%d:%02d", left / 60, left % 60))
        self.done = done
    }

}
