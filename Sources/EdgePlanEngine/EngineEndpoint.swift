import EdgePlanCore

/// Where an engine listens: `http://HOST:PORT` (localhost, or any host the robot reaches) or a Unix socket
/// (`unix:/run/engine.sock`).
public struct EngineEndpoint: Sendable, Equatable, CustomStringConvertible {
    public enum Address: Sendable, Equatable {
        case http(String)
        case unix(String)
    }

    public let address: Address

    public init(_ text: String) throws {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard path.hasPrefix("/") else {
                throw EdgePlanError.invalidInput(
                    "a Unix socket engine needs an absolute path: unix:/path/to/socket",
                    field: "engine"
                )
            }
            address = .unix(path)
        } else if text.hasPrefix("http://") || text.hasPrefix("https://") {
            var base = text
            while base.hasSuffix("/") { base.removeLast() }
            if base.hasSuffix("/v1") { base.removeLast(3) }
            address = .http(base)
        } else {
            throw EdgePlanError.invalidInput(
                "engine '\(text)' is neither http://HOST:PORT nor unix:/PATH",
                field: "engine"
            )
        }
    }

    /// The URL of `path` (`/v1/completions`) in the form the HTTP client takes, `http+unix://` for a socket.
    func url(path: String) -> String {
        switch address {
        case let .http(base):
            return base + path
        case let .unix(socket):
            let encoded = socket.utf8.map { byte -> String in
                let scalar = Unicode.Scalar(byte)
                return (scalar.properties.isAlphabetic && byte < 128) || (0x30...0x39).contains(byte) || byte == 0x2D
                    || byte == 0x2E || byte == 0x5F
                    ? String(scalar) : "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            }.joined()
            return "http+unix://\(encoded)\(path)"
        }
    }

    public var description: String {
        switch address {
        case let .http(base): base
        case let .unix(path): "unix:\(path)"
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
