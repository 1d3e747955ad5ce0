import CSystemd
import EdgePlanCore
import Foundation
import NIOCore
import NIOExtras
import NIOPosix
import Synchronization

/// A message longer than ``NULFrameDecoder/maxFrameBytes``: the connection is closed and the event counted.
struct FrameTooLarge: Error {}

/// Splits a byte stream into NUL-terminated Varlink messages; an oversized message closes the connection.
struct NULFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    /// The largest call is a Report with every sample's length, about a kilobyte: 64 KiB leaves room and no more.
    static let maxFrameBytes = 64 << 10

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let index = buffer.readableBytesView.firstIndex(of: 0) else {
            if buffer.readableBytes > Self.maxFrameBytes { throw FrameTooLarge() }
            return .needMoreData
        }
        if index - buffer.readerIndex > Self.maxFrameBytes { throw FrameTooLarge() }
        let length = index - buffer.readerIndex
        let frame = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }
}

/// Answers each message in order on its connection (pipelined calls get in-order replies).
final class VarlinkConnectionHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let dispatcher: VarlinkDispatcher
    /// The peer's user and group, read once from SO_PEERCRED when the connection is accepted.
    let peer: PeerIdentity

    /// Set once the connection has subscribed to events: it is then not idle while it only listens.
    private let watching = Atomic<Bool>(false)
    /// A watcher's events in flight and those it lost.
    private let backlog = WatchBacklog()
    /// Replies owed in call order while a deferred one (a `Report` waiting for the store) is outstanding: each is its
    /// bytes once known. Touched on the connection's event loop only.
    private let pending = Mutex<PendingReplies>(PendingReplies())

    struct PendingReplies {
        var slots: [ByteBuffer?] = []
        var first = 0
    }

    /// The connection's place in the service's table.
    let connection: ConnectionCount.ID

    init(dispatcher: VarlinkDispatcher, peer: PeerIdentity, connection: ConnectionCount.ID) {
        self.dispatcher = dispatcher
        self.peer = peer
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        dispatcher.service.connections.called(connection)
        let response =
            frame.readableBytesView.withContiguousStorageIfAvailable { dispatcher.respond($0, peer: peer) }
            ?? dispatcher.respond(Array(frame.readableBytesView), peer: peer)
        switch response {
        case .reply(nil): return
        case let .reply(reply?): send(Self.frame(reply, allocator: context.channel.allocator), context: context)
        case let .encoded(bytes): send(Self.frame(bytes, allocator: context.channel.allocator), context: context)
        case let .watch(kinds): watch(kinds, context: context)
        case let .deferred(deferred):
            // A slot keeps the reply's place: pipelined calls after it are answered after it.
            let slot = pending.withLock { pending -> Int in
                pending.slots.append(nil)
                return pending.first + pending.slots.count - 1
            }
            let channel = context.channel
            deferred.whenReady { [self] reply in
                channel.eventLoop.execute {
                    let ready = self.pending.withLock { pending -> [ByteBuffer] in
                        pending.slots[slot - pending.first] = Self.frame(reply, allocator: channel.allocator)
                        var ready: [ByteBuffer] = []
                        while let head = pending.slots.first, let bytes = head {
                            ready.append(bytes)
                            pending.slots.removeFirst()
                            pending.first += 1
                        }
                        return ready
                    }
                    for bytes in ready { channel.write(bytes, promise: nil) }
                    if !ready.isEmpty { channel.flush() }
                }
            }
        }
    }

    /// Writes a reply now, or, while a deferred reply before it is outstanding, keeps its place behind it.
    private func send(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        let queued = pending.withLock { pending -> Bool in
            guard !pending.slots.isEmpty else { return false }
            pending.slots.append(bytes)
            return true
        }
        if !queued { context.write(wrapOutboundOut(bytes), promise: nil) }
    }

    static func frame(_ reply: JSONValue, allocator: ByteBufferAllocator) -> ByteBuffer {
        frame(reply.utf8(), allocator: allocator)
    }

    /// A message as it goes on the wire: its bytes and the terminating NUL.
    static func frame(_ bytes: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: bytes.count + 1)
        out.writeBytes(bytes)
        out.writeInteger(UInt8(0))
        return out
    }

    /// Subscribes the connection to events: each is written as one more reply of the `Watch` call, on the
    /// connection's event loop. Past ``EventStream/maximumPending`` unwritten events, or while the socket does not
    /// take more, events are dropped and the next reply counts them.
    private func watch(_ kinds: Set<EventStream.Kind>, context: ChannelHandlerContext) {
        watching.store(true, ordering: .relaxed)
        dispatcher.service.connections.watching(connection)
        let channel = context.channel
        let backlog = self.backlog
        let subscriber = EventStream.Subscriber(kinds: kinds) { event in
            guard backlog.admit(writable: channel.isWritable) else { return false }
            channel.eventLoop.execute {
                guard case let .object(pairs) = event else { return }
                let reply = JSONValue.object([
                    ("parameters", .object(pairs + [("dropped", .int(backlog.written()))])), ("continues", .bool(true)),
                ])
                channel.writeAndFlush(Self.frame(reply, allocator: channel.allocator), promise: nil)
            }
            return true
        }
        let events = dispatcher.service.events
        events.subscribe(subscriber)
        channel.closeFuture.whenComplete { _ in events.unsubscribe(subscriber) }
        context.write(
            wrapOutboundOut(Self.frame(VarlinkDispatcher.watching(kinds), allocator: channel.allocator)),
            promise: nil
        )
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        // Backpressure: a client that does not read its replies stops being read, so they cannot pile up here.
        if !context.channel.isWritable {
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // A watcher that can take replies again hears at once how many events it lost meanwhile.
        if context.channel.isWritable, watching.load(ordering: .relaxed), case let lost = backlog.takeDropped(),
            lost > 0
        {
            let reply = JSONValue.fields([
                "parameters": .fields([
                    "kind": .string("dropped"), "time": .number(Date().timeIntervalSince1970), "event": .object([]),
                    "dropped": .int(lost),
                ]),
                "continues": .bool(true),
            ])
            context.writeAndFlush(
                wrapOutboundOut(Self.frame(reply, allocator: context.channel.allocator)),
                promise: nil
            )
        }
        if context.channel.isWritable {
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Idle past the timeout: the connection's descriptor goes back to the pool.
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read, !watching.load(ordering: .relaxed) {
            dispatcher.service.countIdleClose()
            context.close(promise: nil)
            return
        }
        // Stopping: every call already read has its reply written (calls are answered as they are read);
        // close once those replies have left, so no client loses an answer it was owed.
        if event is ChannelShouldQuiesceEvent {
            let channel = context.channel
            channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            // Closed through the channel (which is Sendable), on its own loop when the write completes.
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                channel.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed or hostile peer only ever loses its own connection; an oversized message is counted.
        if error is FrameTooLarge { dispatcher.service.countOversizeFrame(peer: peer.uid) }
        context.close(promise: nil)
    }
}

/// A watcher's events in flight and those it lost.
final class WatchBacklog: Sendable {
    private let counts = Mutex((pending: 0, dropped: 0))

    /// Takes a place for one more event, or counts it as dropped.
    func admit(writable: Bool) -> Bool {
        counts.withLock { counts in
            guard writable && counts.pending < EventStream.maximumPending else {
                counts.dropped += 1
                return false
            }
            counts.pending += 1
            return true
        }
    }

    /// The events dropped since the last report of them, now reported.
    func takeDropped() -> Int {
        counts.withLock { counts in
            defer { counts.dropped = 0 }
            return counts.dropped
        }
    }

    /// One event written; returns the events dropped since the previous one.
    func written() -> Int {
        counts.withLock { counts in
            counts.pending -= 1
            defer { counts.dropped = 0 }
            return counts.dropped
        }
    }
}

/// Answers a connection over the cap with a Varlink error, then closes it.
final class TooManyConnectionsHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Added once the peer's credentials are read: the connection may already be active.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) { refuse(context) }

    private func refuse(_ context: ChannelHandlerContext) {
        let reply = VarlinkError("\(PlannerInterface.name).TooManyConnections", .fields(["limit": .int(limit)])).json
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(VarlinkConnectionHandler.frame(reply, allocator: channel.allocator)))
            .whenComplete { _ in
                channel.close(promise: nil)
            }
    }
}

/// The Varlink listener on a Unix socket: a socket-activated descriptor or a path it binds itself.
public final class VarlinkServer: Sendable {
    /// Limits that keep any client behaviour from exhausting the daemon.
    public struct Limits: Sendable {
        /// Connections open at once; past it a connection gets `TooManyConnections` and is closed.
        public var maxConnections: Int
        /// Connections one user (by the socket's credentials) may hold open, so that one client cannot take
        /// every place: past it that user's new connection gets `TooManyConnections`.
        public var maxConnectionsPerUser: Int
        /// A connection that sends nothing for this long is closed.
        public var idleTimeoutS: Double
        /// Replies waiting for a slow reader past this many bytes stop the daemon reading from it.
        public var writeHighWaterBytes: Int

        public init(
            maxConnections: Int = 4096,
            maxConnectionsPerUser: Int = 1024,
            idleTimeoutS: Double = 300,
            writeHighWaterBytes: Int = 256 << 10
        ) {
            self.maxConnections = maxConnections
            self.maxConnectionsPerUser = maxConnectionsPerUser
            self.idleTimeoutS = idleTimeoutS
            self.writeHighWaterBytes = writeHighWaterBytes
        }
    }

    public enum Endpoint: Sendable {
        case descriptor(CInt)
        case path(String)
    }

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// Dropped before the event loops stop (see ``quiesce(timeout:)``).
    private let quiescing: Mutex<ServerQuiescingHelper?>
    private let drained = Mutex<EventLoopFuture<Void>?>(nil)
    /// The socket file this server bound (path and inode), removed when it stops; a socket-activated one is systemd's.
    private let ownSocket: (path: String, inode: UInt)?

    public init(
        endpoint: Endpoint,
        dispatcher: VarlinkDispatcher,
        threads: Int = System.coreCount,
        limits: Limits = Limits()
    ) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        do {
            let (channel, helper) = try Self.listen(endpoint, group: group, dispatcher: dispatcher, limits: limits)
            self.channel = channel
            quiescing = Mutex(helper)
            var status = stat()
            if case let .path(path) = endpoint, lstat(path, &status) == 0 {
                ownSocket = (path, UInt(status.st_ino))
            } else {
                ownSocket = nil
            }
        } catch {
            // The quiescing helper of a failed listen is gone by now; it needed the event loops to go.
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
    }

    private static func listen(
        _ endpoint: Endpoint,
        group: MultiThreadedEventLoopGroup,
        dispatcher: VarlinkDispatcher,
        limits: Limits
    ) throws -> (any Channel, ServerQuiescingHelper) {
        if case let .path(path) = endpoint { try claim(path) }
        let open = dispatcher.service.connections
        let quiescing = ServerQuiescingHelper(group: group)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            // Every accepted connection is collected, so that stopping can ask each to finish and close.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                    // Out of descriptors (EMFILE, ENFILE), accept waits a moment instead of failing again at once.
                    try channel.pipeline.syncOperations.addHandler(
                        AcceptBackoffHandler(shouldForwardIOErrorCaught: false) { _ in .milliseconds(100) }
                    )
                }
            }
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelOption(
                ChannelOptions.writeBufferWaterMark,
                value: .init(low: limits.writeHighWaterBytes / 4, high: limits.writeHighWaterBytes)
            )
            .childChannelInitializer { channel in
                peerIdentity(channel).flatMapThrowing { peer in
                    let admission = open.enter(
                        user: peer.uid,
                        limit: limits.maxConnections,
                        perUser: limits.maxConnectionsPerUser
                    ) {
                        channel.close(promise: nil)
                    }
                    switch admission {
                    case let .refused(limit):
                        dispatcher.service.countRejectedConnection()
                        try channel.pipeline.syncOperations.addHandler(TooManyConnectionsHandler(limit: limit))
                    case let .admitted(id, evicted):
                        if evicted { dispatcher.service.countIdleClose() }
                        channel.closeFuture.whenComplete { _ in open.leave(id) }
                        try channel.pipeline.syncOperations.addHandler(
                            IdleStateHandler(readTimeout: .milliseconds(Int64(limits.idleTimeoutS * 1000)))
                        )
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(NULFrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(
                            VarlinkConnectionHandler(dispatcher: dispatcher, peer: peer, connection: id)
                        )
                    }
                }
            }
        switch endpoint {
        case let .descriptor(fd): return (try bootstrap.withBoundSocket(fd).wait(), quiescing)
        case let .path(path):
            // Bound under a private name, made readable and writable by the owner and the group only (whatever
            // the umask), then renamed into place: no client ever finds the socket with any other mode.
            let suffix = ".\(getpid())"
            let staging = path + suffix
            let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
            guard staging.utf8.count < capacity else {
                throw EdgePlanError(
                    .io,
                    "socket path too long (at most \(capacity - 1 - suffix.utf8.count) bytes)",
                    file: path
                )
            }
            let channel = try bootstrap.bind(unixDomainSocketPath: staging, cleanupExistingSocketFile: true).wait()
            guard chmod(staging, 0o660) == 0, rename(staging, path) == 0 else {
                let reason = String(cString: strerror(errno))
                channel.close(promise: nil)
                unlink(staging)
                throw EdgePlanError(.io, "cannot put the socket in place with mode 0660: \(reason)", file: path)
            }
            return (channel, quiescing)
        }
    }

    /// The connecting process's user id (SO_PEERCRED); a connection whose credentials cannot be read is refused.
    static func peerIdentity(_ channel: any Channel) -> EventLoopFuture<PeerIdentity> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(EdgePlanError(.io, "no socket credentials on this channel"))
        }
        let credentials: EventLoopFuture<edgeplan_peer_credentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET),
            name: SocketOptionName(SO_PEERCRED)
        )
        return credentials.map { PeerIdentity(uid: $0.uid, gid: $0.gid) }
    }

    /// Refuses a socket path another daemon answers on; a stale socket file (nobody listening) is replaced.
    static func claim(_ path: String) throws {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard (status.st_mode & S_IFMT) == S_IFSOCK else {
            throw EdgePlanError(.io, "exists and is not a socket; not replacing it", file: path)
        }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard probe >= 0 else { return }
        defer { close(probe) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw EdgePlanError(.io, "socket path too long", file: path)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected == 0 {
            throw EdgePlanError(
                .io,
                "another daemon answers on this socket; stop it first or choose another path",
                file: path
            )
        }
    }

    /// Stops accepting and asks every connection to close once the replies it is owed have left. Idempotent.
    public func beginQuiescing() {
        let promise = drained.withLock { drained -> EventLoopPromise<Void>? in
            guard drained == nil else { return nil }
            let promise = group.next().makePromise(of: Void.self)
            drained = promise.futureResult
            return promise
        }
        if let promise {
            if let helper = quiescing.withLock({ $0 }) {
                helper.initiateShutdown(promise: promise)
            } else {
                promise.succeed()
            }
        }
    }

    /// Quiesces, waits for the connections to close, and stops the event loops. Connections still open after
    /// `timeout` (a client that never reads its replies) are closed with them.
    public func quiesce(timeout: Duration) async {
        beginQuiescing()
        let drained = self.drained.withLock { $0 }!
        await withTaskGroup(of: Void.self) { race in
            race.addTask { try? await drained.get() }
            race.addTask { try? await Task.sleep(for: timeout) }
            await race.next()
            race.cancelAll()
        }
        // The helper's deinit resolves a promise on the loops: it must go while they still run.
        quiescing.withLock { $0 = nil }
        try? await group.shutdownGracefully()
        // Only if it is still ours: a daemon started on the same path since then keeps its socket.
        var status = stat()
        if let ownSocket, lstat(ownSocket.path, &status) == 0, UInt(status.st_ino) == ownSocket.inode {
            unlink(ownSocket.path)
        }
    }

    /// Returns when the listener closes, by quiescing or because it failed.
    public func closed() async {
        try? await channel.closeFuture.get()
    }
}
