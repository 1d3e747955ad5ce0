/// Splits a `text/event-stream` body into the `data:` payloads of its events, whatever the chunking of the bytes.
///
/// Only what OpenAI-compatible engines send is needed: one `data:` line per event, blank lines between events,
/// `data: [DONE]` at the end, comment lines (`:`) and other fields ignored.
struct ServerSentEvents {
    private var pending: [UInt8] = []

    /// Feeds the next bytes; returns the payloads of the lines completed by them.
    mutating func feed(_ bytes: some Collection<UInt8>) -> [[UInt8]] {
        pending.append(contentsOf: bytes)
        var payloads: [[UInt8]] = []
        var start = pending.startIndex
        while let newline = pending[start...].firstIndex(of: 0x0A) {
            var line = pending[start..<newline]
            if line.last == 0x0D { line = line.dropLast() }
            start = newline + 1
            if let payload = Self.payload(line) { payloads.append(payload) }
        }
        pending.removeSubrange(pending.startIndex..<start)
        return payloads
    }

    /// What is left once the body ends: a last line without a newline.
    mutating func finish() -> [[UInt8]] {
        defer { pending.removeAll() }
        return Self.payload(pending[...]).map { [$0] } ?? []
    }

    /// Bytes still waiting for the end of their line.
    var buffered: Int { pending.count }

    private static let prefix = Array("data:".utf8)

    private static func payload(_ line: ArraySlice<UInt8>) -> [UInt8]? {
        guard line.starts(with: prefix) else { return nil }
        var value = line.dropFirst(prefix.count)
        if value.first == 0x20 { value = value.dropFirst() }
        return Array(value)
    }
}
