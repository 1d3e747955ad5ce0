import CSystemd
import Foundation
import Logging
import Synchronization

/// A swift-log handler that sends structured entries to journald, or plain lines to stderr without one.
///
/// Requests never wait on the journal: entries go to a bounded queue drained by one background thread;
/// when the queue is full the entry is dropped and counted. Metadata keys become journal fields
/// (`model` → `EDGEPLAN_MODEL`); `MESSAGE_ID` passes through as it is.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let sink: JournalSink

    public init(label: String, sink: JournalSink) {
        self.label = label
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        guard sink.admits(event.level) else { return }
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        // Turning metadata into journal fields happens on the sink's thread, off the request path.
        sink.submit(JournalSink.Entry(message: event.message.description, priority: Self.priority(event.level), logger: label, metadata: merged,
                                      file: event.file, line: event.line, function: event.function))
    }

    /// The journal fields of an entry, metadata sorted by key.
    static func fields(of entry: JournalSink.Entry) -> [(String, String)] {
        var fields: [(String, String)] = [
            ("MESSAGE", entry.message),
            ("PRIORITY", String(entry.priority)),
            ("SYSLOG_IDENTIFIER", "edgeplan"),
            ("EDGEPLAN_LOGGER", entry.logger),
            // Where in the source the entry was made, as journald's own clients record it.
            ("CODE_FILE", entry.file),
            ("CODE_LINE", String(entry.line)),
            ("CODE_FUNC", entry.function),
        ]
        var metadata = entry.metadata
        if let deferred = entry.deferredMetadata { metadata.merge(deferred()) { $1 } }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            fields.append((fieldName(key), value.description))
        }
        return fields
    }

    /// `MESSAGE_ID` stays; anything else becomes `EDGEPLAN_` plus the key upper-cased, non-alphanumerics as `_`.
    static func fieldName(_ key: String) -> String {
        if key == "MESSAGE_ID" { return key }
        var name = Array("EDGEPLAN_".utf8)
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): name.append(byte - 32)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): name.append(byte)
            default: name.append(UInt8(ascii: "_"))
            }
        }
        return String(decoding: name, as: UTF8.self)
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}

/// The bounded queue and background writer behind ``JournalLogHandler``.
public final class JournalSink: Sendable {
    public enum Target: Sendable {
        case journal
        case stderr
    }

    public let target: Target
    private let capacity: Int
    private let state = Mutex<State>(State())
    private let wake = DispatchSemaphore(value: 0)
    /// Held while a batch is written, so ``flush()`` and the writer thread never interleave.
    private let writing = Mutex<Void>(())
    /// How long the writer waits after the queue turns non-empty before writing: a burst of decisions costs the
    /// serving threads one wake-up of the writer, not one each.
    private let batchDelayS: Double

    /// One log event as the handler hands it over.
    struct Entry: Sendable {
        var message: String
        var priority: Int
        var logger: String
        var metadata: Logger.Metadata
        var file = ""
        var line: UInt = 0
        var function = ""
        /// Metadata built on the writer's thread, not the caller's: a decision's fields are formatted off the
        /// event loop.
        var deferredMetadata: (@Sendable () -> Logger.Metadata)?
    }

    private struct State {
        var queue: [Entry] = []
        var dropped = 0
        var failed = 0
        var written = 0
    }

    /// Chooses the journal when its socket exists, else stderr.
    public static func automatic(capacity: Int = 4096) -> JournalSink {
        let journal = FileManager.default.fileExists(atPath: "/run/systemd/journal/socket")
        return JournalSink(target: journal ? .journal : .stderr, capacity: capacity)
    }

    public init(target: Target, capacity: Int = 4096, batchDelayS: Double = 0.005) {
        self.target = target
        self.capacity = capacity
        self.batchDelayS = batchDelayS
        let thread = Thread { [self] in drain() }
        thread.name = "edgeplan-journal"
        thread.start()
    }

    /// The least severe level written (the policy's `journal.level`); entries below it are not written.
    private let minimumLevel = Mutex<Logger.Level>(.info)

    public func setLevel(_ level: Logger.Level) { minimumLevel.withLock { $0 = level } }

    func admits(_ level: Logger.Level) -> Bool { level >= minimumLevel.withLock { $0 } }

    /// Entries written, dropped because the queue was full, and refused by the journal.
    public var counters: (written: Int, dropped: Int, failed: Int) { state.withLock { ($0.written, $0.dropped, $0.failed) } }

    func submit(_ entry: Entry) {
        let first = state.withLock { state -> Bool in
            guard state.queue.count < capacity else {
                state.dropped += 1
                return false
            }
            state.queue.append(entry)
            return state.queue.count == 1
        }
        if first { wake.signal() }
    }

    /// Writes whatever is queued now (at shutdown, so the last decisions reach the journal).
    public func flush() { writeBatch() }

    private func drain() {
        while true {
            wake.wait()
            if batchDelayS > 0 { usleep(useconds_t(batchDelayS * 1e6)) }
            writeBatch()
        }
    }

    private func writeBatch() {
        writing.withLock { _ in
            let batch = state.withLock { state -> [Entry] in
                let batch = state.queue
                state.queue.removeAll(keepingCapacity: false)
                return batch
            }
            // Lines go out in chunks of about 64 KiB: a whole batch as one string (4,096 decisions, several MB, and a
            // copy to write it) would leave the allocator holding that much after every burst.
            var text = ""
            var written = 0, failed = 0
            for entry in batch {
                let fields = JournalLogHandler.fields(of: entry)
                switch target {
                case .stderr:
                    text += Self.line(fields)
                    written += 1
                    if text.utf8.count >= 64 << 10 { Self.writeToStandardError(&text) }
                case .journal:
                    if send(fields) { written += 1 } else { failed += 1 }
                }
            }
            Self.writeToStandardError(&text)
            state.withLock {
                $0.written += written
                $0.failed += failed
            }
        }
    }

    /// Writes `text` to standard error and empties it (keeping its storage for the next chunk).
    private static func writeToStandardError(_ text: inout String) {
        guard !text.isEmpty else { return }
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let count = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                offset += count
            }
        }
        text.removeAll(keepingCapacity: true)
    }

    /// One stderr line: the message, then the EDGEPLAN_ fields.
    static func line(_ fields: [(String, String)]) -> String {
        let message = fields.first { $0.0 == "MESSAGE" }?.1 ?? ""
        let extra = fields.filter { $0.0.hasPrefix("EDGEPLAN_") && $0.0 != "EDGEPLAN_LOGGER" }.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        return "edgeplan: \(message)\(extra.isEmpty ? "" : " " + extra)\n"
    }

    private func send(_ fields: [(String, String)]) -> Bool {
        // sd_journal_sendv fails against a stale socket; that is counted, never passed to a request.
        let copies = fields.map { strdup("\($0.0)=\($0.1)")! }
        defer { copies.forEach { free($0) } }
        var vectors = copies.map { iovec(iov_base: UnsafeMutableRawPointer($0), iov_len: strlen($0)) }
        return edgeplan_sd_journal_sendv(&vectors, Int32(vectors.count)) >= 0
    }
}
