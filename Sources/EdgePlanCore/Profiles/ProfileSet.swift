/// A device profile with its model variants and accuracy tables: the planner's whole view of one device.
public struct ProfileSet: Sendable {
    public var device: DeviceProfile
    public var variants: [VariantID: ModelVariant]
    public var accuracy: [String: AccuracyTable]
    /// A content hash of the source files, so caches and clients can tell versions apart.
    public var version: String

    public init(
        device: DeviceProfile,
        variants: [VariantID: ModelVariant],
        accuracy: [String: AccuracyTable],
        version: String
    ) {
        self.device = device
        self.variants = variants
        self.accuracy = accuracy
        self.version = version
    }

    /// Sorted task names.
    public var tasks: [String] { accuracy.keys.sorted() }

    /// Sorted model names.
    public var modelNames: [String] { Set(variants.keys.map(\.model)).sorted() }

    /// The variant for a model name (case-insensitive) and quantization, or an error listing what exists.
    public func variant(model: String, quantization: Quantization) throws -> ModelVariant {
        if let exact = variants[VariantID(model: model, quantization: quantization)] { return exact }
        if let match = variants.values.first(where: {
            $0.id.model.lowercased() == model.lowercased() && $0.id.quantization == quantization
        }) {
            return match
        }
        if modelNames.contains(where: { $0.lowercased() == model.lowercased() }) {
            let quants = variants.keys.filter { $0.model.lowercased() == model.lowercased() }.map(
                \.quantization.rawValue
            ).sorted()
            throw EdgePlanError(
                .unknownModel,
                "model '\(model)' has no \(quantization.rawValue) variant in profile '\(device.name)'; available: \(quants.joined(separator: ", "))",
                field: "quantization"
            )
        }
        throw EdgePlanError(
            .unknownModel,
            "unknown model '\(model)'; known models: \(modelNames.joined(separator: ", "))",
            field: "model"
        )
    }

    /// The accuracy table of a task, or an error listing the known tasks.
    public func table(task: String) throws -> AccuracyTable {
        guard let table = accuracy[task] else {
            throw EdgePlanError(
                .unknownTask,
                "unknown task '\(task)'; known tasks: \(tasks.joined(separator: ", "))",
                field: "task"
            )
        }
        return table
    }
}

extension ProfileSet {
    /// The profile's files as ``ProfileEncoder`` writes them.
    public var encodedFiles: [ProfileDecoder.File] {
        var files = [ProfileDecoder.File(path: "device.yaml", text: ProfileEncoder.device(device))]
        for variant in variants.values.sorted(by: { $0.id < $1.id }) {
            files.append(.init(path: "models/\(variant.id.fileStem).yaml", text: ProfileEncoder.variant(variant)))
        }
        for table in accuracy.values.sorted(by: { $0.task < $1.task }) {
            files.append(.init(path: "accuracy/\(table.task).yaml", text: ProfileEncoder.accuracy(table)))
        }
        return files
    }

    /// This profile with `variant` replaced, versioned by the content of the result.
    public func replacing(_ variant: ModelVariant) -> ProfileSet {
        var next = self
        next.variants[variant.id] = variant
        next.version = ProfileDecoder.contentHash(next.encodedFiles)
        return next
    }
}

extension VariantID {
    /// `dsr1-llama-8b.fp16`: the stem of the variant's file name.
    public var fileStem: String { "\(model.lowercased()).\(quantization.rawValue)" }
}
