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
        sink.submit(
            JournalSink.Entry(
                message: event.message.description,
                priority: Self.priority(event.level),
                logger: label,
                metadata: merged,
                file: event.file,
                line: event.line,
                function: event.function
            )
        )
    }

    /// The journal fields of an entry: the standard ones, then a decision's own fields, then metadata sorted by key.
    static func fields(of entry: JournalSink.Entry, into fields: inout JournalFields) {
        fields.append("MESSAGE", entry.message)
        fields.append("PRIORITY", String(entry.priority))
        fields.append("SYSLOG_IDENTIFIER", "edgeplan")
        fields.append("EDGEPLAN_LOGGER", entry.logger)
        // Where in the source the entry was made, as journald's own clients record it.
        fields.append("CODE_FILE", entry.file)
        fields.append("CODE_LINE", String(entry.line))
        fields.append("CODE_FUNC", entry.function)
        entry.decision?.write(into: &fields)
        guard !entry.metadata.isEmpty else { return }
        for (key, value) in entry.metadata.sorted(by: { $0.key < $1.key }) {
            fields.append(name: fieldName(key), value.description)
        }
    }

    /// The journal fields of an entry as text pairs.
    static func fields(of entry: JournalSink.Entry) -> [(String, String)] {
        var fields = JournalFields()
        Self.fields(of: entry, into: &fields)
        return fields.pairs
    }

    /// `MESSAGE_ID` and names already `EDGEPLAN_…` stay; anything else becomes `EDGEPLAN_` plus the key upper-cased, non-alphanumerics as `_`.
    static func fieldName(_ key: String) -> String {
        if key == "MESSAGE_ID" || key.hasPrefix("EDGEPLAN_") { return key }
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
    /// Held while a batch is written, so ``flush()`` and the writer thread never interleave; holds the buffers
    /// entries are formatted into, reused from entry to entry.
    private let writing = Mutex(WriterBuffers())

    private struct WriterBuffers {
        var fields = JournalFields()
        var text: [UInt8] = []
    }
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
        /// A decision, whose fields are formatted on the writer's thread, not the event loop.
        var decision: DecisionRecord?
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
    public var counters: (written: Int, dropped: Int, failed: Int) {
        state.withLock { ($0.written, $0.dropped, $0.failed) }
    }

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

    /// A batch gives its core back this often (about 30 µs of writing): run through at once, a batch of a
    /// hundred decisions held a core for about 400 µs, and a request whose wake-up landed there waited for it,
    /// which was most of the socket path's p99.
    static let entriesBetweenYields = 8

    /// Writes whatever is queued now (at shutdown, so the last decisions reach the journal).
    public func flush() { writeBatch() }

    private func drain() {
        while true {
            wake.wait()
            if batchDelayS > 0 { usleep(useconds_t(batchDelayS * 1e6)) }
            // After a backlog (a queue an eighth full or more) the allocator holds the memory its entries took,
            // a few megabytes in glibc's arenas: hand it back once the batch is written.
            if writeBatch() >= capacity / 8 { _ = edgeplan_malloc_trim() }
        }
    }

    /// Writes the queued entries; returns how many there were.
    @discardableResult
    private func writeBatch() -> Int {
        writing.withLock { buffers in
            let batch = state.withLock { state -> [Entry] in
                let batch = state.queue
                state.queue.removeAll(keepingCapacity: false)
                return batch
            }
            // Lines go out in chunks of about 64 KiB: a whole batch as one string (4,096 decisions, several MB, and a
            // copy to write it) would leave the allocator holding that much after every burst.
            var written = 0
            var failed = 0
            // A writer that keeps up gives way to requests; one that falls behind (a long queue) does not, so that
            // under a flood it keeps its share of the cores and decisions are not dropped.
            let yielding = batch.count < capacity / 8
            for (index, entry) in batch.enumerated() {
                if yielding && index % Self.entriesBetweenYields == Self.entriesBetweenYields - 1 { sched_yield() }
                buffers.fields.removeAll()
                JournalLogHandler.fields(of: entry, into: &buffers.fields)
                switch target {
                case .stderr:
                    buffers.fields.appendLine(message: entry.message, to: &buffers.text)
                    written += 1
                    if buffers.text.count >= 64 << 10 { Self.writeToStandardError(&buffers.text) }
                case .journal:
                    if send(buffers.fields) { written += 1 } else { failed += 1 }
                }
            }
            Self.writeToStandardError(&buffers.text)
            state.withLock {
                $0.written += written
                $0.failed += failed
            }
            return batch.count
        }
    }

    /// Writes `text` to standard error and empties it (keeping its storage for the next chunk).
    private static func writeToStandardError(_ text: inout [UInt8]) {
        guard !text.isEmpty else { return }
        text.withUnsafeBufferPointer { bytes in
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
    static func line(_ entry: Entry) -> String {
        var fields = JournalFields()
        var line: [UInt8] = []
        JournalLogHandler.fields(of: entry, into: &fields)
        fields.appendLine(message: entry.message, to: &line)
        return String(decoding: line, as: UTF8.self)
    }

    private func send(_ fields: JournalFields) -> Bool {
        // sd_journal_sendv fails against a stale socket; that is counted, never passed to a request.
        fields.bytes.withUnsafeBufferPointer { bytes in
            var vectors = fields.items.map { item in
                iovec(
                    iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress! + item.lowerBound),
                    iov_len: item.count
                )
            }
            return edgeplan_sd_journal_sendv(&vectors, Int32(vectors.count)) >= 0
        }
    }
}
