/// The wall time of every decode step of one run: what a per-token trace (`tbt-*.json`) holds.
public struct TokenTimeSeries: Sendable, Equatable {
    public var model: String
    public var inputTokens: Int
    public var batch: Int
    public var seconds: [Double]

    public init(model: String, inputTokens: Int, batch: Int, seconds: [Double]) {
        self.model = model
        self.inputTokens = inputTokens
        self.batch = batch
        self.seconds = seconds
    }

    /// Reads `{model, input_tokens, batch, tbt_s: [...]}`; every step time must be a positive number.
    public static func decode(_ bytes: [UInt8], file: String) throws -> TokenTimeSeries {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes) } catch let error as EdgePlanError {
            throw EdgePlanError.invalidFile(error.message, file: file)
        }
        guard case let .array(steps)? = root["tbt_s"] else {
            throw EdgePlanError.invalidFile("missing tbt_s array", file: file, field: "tbt_s")
        }
        guard let model = root["model"]?.stringValue else {
            throw EdgePlanError.invalidFile("missing model", file: file, field: "model")
        }
        guard let input = root["input_tokens"]?.doubleValue, input >= 1, input == input.rounded() else {
            throw EdgePlanError.invalidFile(
                "input_tokens must be a positive integer",
                file: file,
                field: "input_tokens"
            )
        }
        let seconds = try steps.enumerated().map { index, value -> Double in
            guard let step = value.doubleValue, step > 0, step.isFinite else {
                throw EdgePlanError.invalidFile(
                    "step time must be a positive number",
                    file: file,
                    field: "tbt_s[\(index)]"
                )
            }
            return step
        }
        guard !seconds.isEmpty else { throw EdgePlanError.invalidFile("tbt_s is empty", file: file, field: "tbt_s") }
        return TokenTimeSeries(
            model: MeasurementDecoder.canonicalModelName(model),
            inputTokens: Int(input),
            batch: Int(root["batch"]?.doubleValue ?? 1),
            seconds: seconds
        )
    }
}
