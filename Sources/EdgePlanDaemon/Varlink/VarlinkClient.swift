import EdgePlanCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A small blocking Varlink client over a Unix socket, for the CLI and the benchmark.
public final class VarlinkClient {
    private let fd: CInt
    private var pending: [UInt8] = []

    public init(socketPath: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EdgePlanError(.io, "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw EdgePlanError(.io, "socket path too long", file: socketPath)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw EdgePlanError(.io, "cannot connect: \(message)", file: socketPath)
        }
    }

    deinit { close(fd) }

    /// Sends one call and waits for its reply.
    public func call(_ method: String, _ parameters: JSONValue) throws -> JSONValue {
        try send(method, parameters)
        return try receive()
    }

    /// Sends one call; with `more`, the daemon may answer with a stream of replies (`receive` each).
    public func send(_ method: String, _ parameters: JSONValue, more: Bool = false) throws {
        var call: [(String, JSONValue)] = [("method", .string(method)), ("parameters", parameters)]
        if more { call.append(("more", .bool(true))) }
        var message = Array(JSONValue.object(call).serialized().utf8)
        message.append(0)
        var offset = 0
        while offset < message.count {
            let sent = message[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                throw EdgePlanError(.io, "send: \(String(cString: strerror(errno)))")
            }
            offset += sent
        }
    }

    public func receive() throws -> JSONValue {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = pending.firstIndex(of: 0) {
                let frame = Array(pending[..<end])
                pending.removeSubrange(...end)
                return try JSONValue.parse(frame)
            }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw EdgePlanError(.io, "connection closed by the daemon") }
            pending += chunk[0..<count]
        }
    }

    /// One call; its reply parameters, or the daemon's error as an EdgePlanError naming it.
    public static func call(
        socketPath: String,
        _ method: String,
        _ parameters: JSONValue = .object([])
    ) throws -> JSONValue {
        let reply = try VarlinkClient(socketPath: socketPath).call(method, parameters)
        if let error = reply["error"]?.stringValue {
            let message = reply["parameters"]?["message"]?.stringValue ?? reply["parameters"]?.serialized() ?? ""
            throw EdgePlanError(
                error.hasSuffix("ReloadFailed") ? .invalidFile : .invalidInput,
                "daemon answered \(error): \(message)"
            )
        }
        return reply["parameters"] ?? .object([])
    }

    /// Asks a daemon for a plan; returns the plan JSON or the infeasibility object, throws other errors.
    public static func plan(socketPath: String, request: PlanRequest) throws -> JSONValue {
        let client = try VarlinkClient(socketPath: socketPath)
        // Exactly what the CLI was given: what it leaves out, the daemon's policy fills in, as it would locally.
        let reply = try client.call(
            "io.edgeplan.Planner.Plan",
            .fields([
                "task": .string(request.task), "deadlineMs": request.deadlineS.map { .number($0 * 1000) } ?? .null,
                "energyBudgetJ": request.energyBudgetJ.map(JSONValue.number) ?? .null,
                "inputTokens": request.inputTokens.map(JSONValue.int) ?? .null,
                "minAccuracy": request.minAccuracy.map(JSONValue.number) ?? .null,
                "objective": request.objective.map { .string($0.rawValue) } ?? .null,
                "contextTokens": request.contextTokens.map(JSONValue.int) ?? .null,
            ])
        )
        if let error = reply["error"]?.stringValue {
            if error == "io.edgeplan.Planner.Infeasible", case let .object(pairs)? = reply["parameters"] {
                return .object([("error", .string("Infeasible"))] + pairs)
            }
            throw EdgePlanError.invalidInput("daemon answered \(error): \(reply["parameters"]?.serialized() ?? "")")
        }
        guard let plan = reply["parameters"]?["plan"] else { throw EdgePlanError(.io, "daemon reply has no plan") }
        return plan
    }
}
