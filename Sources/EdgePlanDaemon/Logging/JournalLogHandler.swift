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
        var fields: [(String, String)] = [
            ("MESSAGE", event.message.description),
            ("PRIORITY", String(Self.priority(event.level))),
            ("SYSLOG_IDENTIFIER", "edgeplan"),
            ("EDGEPLAN_LOGGER", label),
        ]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            fields.append((Self.fieldName(key), value.description))
        }
        sink.submit(fields)
    }

    /// `MESSAGE_ID` stays; anything else becomes `EDGEPLAN_` plus the key upper-cased, non-alphanumerics as `_`.
    static func fieldName(_ key: String) -> String {
        if key == "MESSAGE_ID" { return key }
        return "EDGEPLAN_" + String(key.uppercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
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

    private struct State {
        var queue: [[(String, String)]] = []
        var dropped = 0
        var failed = 0
        var written = 0
    }

    /// Chooses the journal when its socket exists, else stderr.
    public static func automatic(capacity: Int = 4096) -> JournalSink {
        let journal = FileManager.default.fileExists(atPath: "/run/systemd/journal/socket")
        return JournalSink(target: journal ? .journal : .stderr, capacity: capacity)
    }

    public init(target: Target, capacity: Int = 4096) {
        self.target = target
        self.capacity = capacity
        let thread = Thread { [self] in drain() }
        thread.name = "edgeplan-journal"
        thread.start()
    }

    /// Entries written, dropped because the queue was full, and refused by the journal.
    public var counters: (written: Int, dropped: Int, failed: Int) { state.withLock { ($0.written, $0.dropped, $0.failed) } }

    func submit(_ fields: [(String, String)]) {
        let accepted = state.withLock { state -> Bool in
            guard state.queue.count < capacity else {
                state.dropped += 1
                return false
            }
            state.queue.append(fields)
            return true
        }
        if accepted { wake.signal() }
    }

    private func drain() {
        while true {
            wake.wait()
            let batch = state.withLock { state -> [[(String, String)]] in
                let batch = state.queue
                state.queue.removeAll(keepingCapacity: true)
                return batch
            }
            for entry in batch {
                let ok = write(entry)
                state.withLock {
                    if ok { $0.written += 1 } else { $0.failed += 1 }
                }
            }
        }
    }

    private func write(_ fields: [(String, String)]) -> Bool {
        switch target {
        case .stderr:
            let message = fields.first { $0.0 == "MESSAGE" }?.1 ?? ""
            let extra = fields.filter { $0.0.hasPrefix("EDGEPLAN_") && $0.0 != "EDGEPLAN_LOGGER" }.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
            FileHandle.standardError.write(Data("edgeplan: \(message)\(extra.isEmpty ? "" : " " + extra)\n".utf8))
            return true
        case .journal:
            // sd_journal_sendv fails against a stale socket; that is counted, never passed to a request.
            let copies = fields.map { strdup("\($0.0)=\($0.1)")! }
            defer { copies.forEach { free($0) } }
            var vectors = copies.map { iovec(iov_base: UnsafeMutableRawPointer($0), iov_len: strlen($0)) }
            return edgeplan_sd_journal_sendv(&vectors, Int32(vectors.count)) >= 0
        }
    }
}
