/// What went wrong with an engine, named with the request it was asked.
public struct EngineError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// Nothing answers at the endpoint, or the connection broke.
        case unreachable
        /// The engine answered with an error status, or an error event mid-stream.
        case httpStatus = "http-status"
        /// The stream is not the event stream of an OpenAI-compatible engine.
        case malformedStream = "malformed-stream"
        /// More tokens came back than `max_tokens` allowed.
        case ignoredMaxTokens = "ignored-max-tokens"
        /// The engine kind cannot do what was asked.
        case unsupported
    }

    public let code: Code
    public let message: String
    public let request: String

    public init(_ code: Code, _ message: String, request: String) {
        self.code = code
        self.message = message
        self.request = request
    }

    public var description: String { "\(message) (request: \(request))" }
}
