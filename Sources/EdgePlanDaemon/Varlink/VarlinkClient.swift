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
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
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

    public func send(_ method: String, _ parameters: JSONValue) throws {
        var message = Array(JSONValue.object([("method", .string(method)), ("parameters", parameters)]).serialized().utf8)
        message.append(0)
        var offset = 0
        while offset < message.count {
            let sent = message[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
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

    /// Asks a daemon for a plan; returns the plan JSON or the infeasibility object, throws other errors.
    public static func plan(socketPath: String, request: PlanRequest) throws -> JSONValue {
        let client = try VarlinkClient(socketPath: socketPath)
        guard let deadline = request.deadlineS else { throw EdgePlanError.invalidInput("a deadline is required when asking the daemon", field: "deadline") }
        let reply = try client.call("io.edgeplan.Planner.Plan", .fields([
            "task": .string(request.task), "deadlineMs": .number(deadline * 1000),
            "energyBudgetJ": request.energyBudgetJ.map(JSONValue.number) ?? .null,
            "inputTokens": .int(request.inputTokens ?? 256),
            "minAccuracy": request.minAccuracy.map(JSONValue.number) ?? .null,
        ]))
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
