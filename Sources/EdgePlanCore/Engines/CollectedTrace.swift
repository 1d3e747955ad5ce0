/// The JSON-lines trace that `profile collect` writes and `calibrate` reads: one line per record, appended and
/// made durable point by point.
///
/// Besides the `prefill` and `decode` measurement records that any trace has, a collected trace holds context
/// records that `calibrate` reads and measurement decoders skip: one `model` record (the model's shape, as the
/// engine reported it, and the engine and device context) and one `idle` record (the device's idle power).
public enum CollectedTrace {
    /// Phases of records that describe the collection rather than measure a run.
    public static let contextPhases: Set<String> = ["model", "idle", "warmup", "empty", "concurrency", "interference"]

    /// A model's shape: what a profile needs before any run is timed (memory, the roofline floors, the KV cache).
    public struct Architecture: Sendable, Equatable {
        public var parameters: Double
        public var layers: Int
        public var embedding: Int
        public var kvHeads: Int
        public var headDimension: Int
        public var contextTokens: Int
        public var weightBytes: Double

        public init(
            parameters: Double,
            layers: Int,
            embedding: Int,
            kvHeads: Int,
            headDimension: Int,
            contextTokens: Int,
            weightBytes: Double
        ) {
            self.parameters = parameters
            self.layers = layers
            self.embedding = embedding
            self.kvHeads = kvHeads
            self.headDimension = headDimension
            self.contextTokens = contextTokens
            self.weightBytes = weightBytes
        }

        /// Keys and values of every layer at 16 bits.
        public var kvCacheBytesPerToken: Double { Double(2 * layers * kvHeads * headDimension * 2) }
        public var bytesPerWeight: Double { parameters > 0 ? weightBytes / parameters : 2 }

        public var json: JSONValue {
            .fields([
                "parameters": .number(parameters), "layers": .int(layers), "embedding": .int(embedding),
                "kv_heads": .int(kvHeads), "head_dimension": .int(headDimension), "context_tokens": .int(contextTokens),
                "weight_bytes": .number(weightBytes),
            ])
        }

        public static func decode(_ value: JSONValue, file: String, line: Int) throws -> Architecture {
            func number(_ key: String) throws -> Double {
                guard let number = value[key]?.doubleValue, number >= 0 else {
                    throw EdgePlanError.invalidFile(
                        "missing or negative number",
                        file: file,
                        line: line,
                        field: "architecture.\(key)"
                    )
                }
                return number
            }
            return Architecture(
                parameters: try number("parameters"),
                layers: Int(try number("layers")),
                embedding: Int(try number("embedding")),
                kvHeads: Int(try number("kv_heads")),
                headDimension: Int(try number("head_dimension")),
                contextTokens: Int(try number("context_tokens")),
                weightBytes: try number("weight_bytes")
            )
        }
    }

    /// Where and how a trace was measured; every record of a collection carries it.
    public struct Context: Sendable, Equatable {
        public var engine: EngineKind
        public var engineVersion: String
        public var model: String
        /// The weights' quantization: the GGUF file's type where the collector read it, else what it was told.
        public var quantization: Quantization
        public var powerMode: String?
        public var gpuClockMHz: Double?
        public var rails: String?

        public init(
            engine: EngineKind,
            engineVersion: String,
            model: String,
            quantization: Quantization = .fp16,
            powerMode: String? = nil,
            gpuClockMHz: Double? = nil,
            rails: String? = nil
        ) {
            self.engine = engine
            self.engineVersion = engineVersion
            self.model = model
            self.quantization = quantization
            self.powerMode = powerMode
            self.gpuClockMHz = gpuClockMHz
            self.rails = rails
        }

        var fields: [(String, JSONValue)] {
            var fields: [(String, JSONValue)] = [
                ("engine", .string(engine.rawValue)), ("engine_version", .string(engineVersion)),
                ("quantization", .string(quantization.rawValue)),
            ]
            if let powerMode { fields.append(("power_mode", .string(powerMode))) }
            if let gpuClockMHz { fields.append(("gpu_clock_mhz", .number(gpuClockMHz))) }
            fields.append(("rails", rails.map { .string($0) } ?? .null))
            return fields
        }
    }

    /// One measurement record (a `prefill` or `decode` line that any trace reader takes).
    public struct Measurement: Sendable, Equatable {
        public var phase: Observation.Phase
        public var inputTokens: Int
        public var outputTokens: Int
        public var batch: Int
        public var latencyS: Double
        public var energyJ: Double?
        /// Where the time comes from: `engine` (the engine's own timings) or `client` (chunk arrival times).
        public var timing: String
        /// The whole request as the client saw it (sent to last byte), and the engine's own prompt and decode time
        /// for it: their difference is what a request costs besides its work (HTTP, scheduling, sampling setup).
        public var requestS: Double?
        public var engineS: Double?

        public init(
            phase: Observation.Phase,
            inputTokens: Int,
            outputTokens: Int,
            batch: Int,
            latencyS: Double,
            energyJ: Double?,
            timing: String,
            requestS: Double? = nil,
            engineS: Double? = nil
        ) {
            self.requestS = requestS
            self.engineS = engineS
            self.phase = phase
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
            self.batch = batch
            self.latencyS = latencyS
            self.energyJ = energyJ
            self.timing = timing
        }
    }

    /// The lines of one measured point: its key, its context and time, one line per measurement.
    public static func lines(
        point: SweepDesign.Point,
        measurements: [Measurement],
        context: Context,
        time: Double
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        for measurement in measurements {
            var fields: [(String, JSONValue)] = [
                ("model", .string(context.model)), ("phase", .string(measurement.phase.rawValue)),
                ("input_tokens", .int(measurement.inputTokens)), ("output_tokens", .int(measurement.outputTokens)),
                ("batch", .int(measurement.batch)), ("latency_s", .number(measurement.latencyS)),
            ]
            if let energy = measurement.energyJ {
                fields.append(("energy_j", .number(energy)))
                if measurement.latencyS > 0 { fields.append(("avg_power_w", .number(energy / measurement.latencyS))) }
            }
            fields.append(("timing", .string(measurement.timing)))
            if let requestS = measurement.requestS, let engineS = measurement.engineS {
                fields += [("request_s", .number(requestS)), ("engine_s", .number(engineS))]
            }
            fields += [("point", .string(point.key)), ("time", .number(time))]
            fields += context.fields
            bytes += JSONValue.object(fields).utf8() + [0x0A]
        }
        if measurements.isEmpty {
            // A point that yields nothing to fit (a warm-up, or a run that streamed nothing usable) is still done.
            let phase = point.phase == .warmup ? "warmup" : "empty"
            bytes +=
                JSONValue.object([
                    ("model", .string(context.model)), ("phase", .string(phase)), ("point", .string(point.key)),
                    ("time", .number(time)),
                ]).utf8() + [0x0A]
        }
        return bytes
    }

    /// The line of a concurrency point (`concurrency`: a step's time with `sequences` decoding; `interference`: a
    /// prompt arriving mid-decode), or an `empty` line when it yielded nothing.
    public static func concurrencyLine(
        point: SweepDesign.Point,
        record: JSONValue?,
        context: Context,
        time: Double
    ) -> [UInt8] {
        guard case let .object(measured)? = record else {
            return lines(point: point, measurements: [], context: context, time: time)
        }
        let phase = point.phase == .interference ? "interference" : "concurrency"
        return JSONValue.object(
            [
                ("model", .string(context.model)), ("phase", .string(phase)), ("sequences", .int(point.parallel)),
                ("input_tokens", .int(point.inputTokens)),
            ] + measured + [("point", .string(point.key)), ("time", .number(time))] + context.fields
        ).utf8() + [0x0A]
    }

    /// The `model` line: the model's shape and the engine that served it.
    public static func modelLine(_ architecture: Architecture, context: Context, time: Double) -> [UInt8] {
        JSONValue.object(
            [
                ("model", .string(context.model)), ("phase", .string("model")), ("point", .string("model")),
                ("architecture", architecture.json), ("time", .number(time)),
            ] + context.fields
        ).utf8() + [0x0A]
    }

    /// The `idle` line: the device's power with the engine loaded and idle.
    public static func idleLine(model: String, powerW: Double, seconds: Double, time: Double) -> [UInt8] {
        JSONValue.object([
            ("model", .string(model)), ("phase", .string("idle")), ("point", .string("idle")),
            ("avg_power_w", .number(powerW)), ("latency_s", .number(seconds)), ("time", .number(time)),
        ]).utf8() + [0x0A]
    }

    /// What an existing trace holds: the points already measured, the model's shape, and how many bytes of the file
    /// are whole lines (a line cut short by a crash is dropped and measured again).
    public struct Progress: Sendable, Equatable {
        public var done: Set<String>
        public var architecture: Architecture?
        public var idlePowerW: Double?
        public var model: String?
        /// The quantization the collection names (nil in traces from before it was recorded: fp16).
        public var quantization: Quantization?
        public var wholeBytes: Int
        /// Engine kind and version, power mode and date of the collection, for a profile's `source` fields.
        public var provenance: String = "collected"
    }

    /// A UTC date (YYYY-MM-DD) from Unix seconds, with no calendar library.
    static func date(_ seconds: Double) -> String {
        let days = Int((seconds / 86_400).rounded(.down))
        // Civil-from-days (proleptic Gregorian).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day))"
    }

    public static func progress(_ bytes: [UInt8], file: String) throws -> Progress {
        var progress = Progress(done: [], architecture: nil, idlePowerW: nil, model: nil, wholeBytes: 0)
        var start = 0
        var lineNumber = 0
        for index in bytes.indices where bytes[index] == 0x0A {
            lineNumber += 1
            let line = Array(bytes[start..<index])
            start = index + 1
            guard !line.isEmpty else { continue }
            let row: JSONValue
            do { row = try JSONValue.parse(line) } catch let error as EdgePlanError {
                throw EdgePlanError.invalidFile(error.message, file: file, line: lineNumber)
            }
            if let point = row["point"]?.stringValue { progress.done.insert(point) }
            if let model = row["model"]?.stringValue {
                if let known = progress.model, known != model {
                    throw EdgePlanError.invalidFile(
                        "this trace measures \(known), not \(model)",
                        file: file,
                        line: lineNumber,
                        field: "model"
                    )
                }
                progress.model = model
            }
            if row["phase"]?.stringValue == "model", let architecture = row["architecture"] {
                progress.architecture = try Architecture.decode(architecture, file: file, line: lineNumber)
                if let raw = row["quantization"]?.stringValue {
                    progress.quantization = try Quantization.parse(raw, file: file, line: lineNumber)
                }
                let engine = [row["engine"]?.stringValue, row["engine_version"]?.stringValue].compactMap { $0 }.joined(
                    separator: " "
                )
                let mode = row["power_mode"]?.stringValue.map { ", power mode \($0)" } ?? ""
                let date = row["time"]?.doubleValue.map { ", \(Self.date($0))" } ?? ""
                progress.provenance =
                    "collected by edgeplan profile collect from \(engine.isEmpty ? "an engine" : engine)\(mode)\(date)"
            }
            if row["phase"]?.stringValue == "idle", row["point"]?.stringValue == "idle" {
                progress.idlePowerW = row["avg_power_w"]?.doubleValue
            }
        }
        progress.wholeBytes = start
        return progress
    }
}
