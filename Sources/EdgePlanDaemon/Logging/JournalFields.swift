/// One journal entry's fields as journald takes them (`NAME=value`), written into a single byte buffer: no string
/// per field, and the iovecs for `sd_journal_sendv` point straight into it.
struct JournalFields {
    private(set) var bytes: [UInt8] = []
    /// Where each `NAME=value` item lies in `bytes`.
    private(set) var items: [Range<Int>] = []

    init() {
        bytes.reserveCapacity(1024)
        items.reserveCapacity(32)
    }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        items.removeAll(keepingCapacity: true)
    }

    /// Appends `name=value`; `name` must already be a journal field name.
    mutating func append(_ name: StaticString, _ value: String) {
        let start = bytes.count
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "="))
        var value = value
        value.withUTF8 { bytes.append(contentsOf: $0) }
        items.append(start..<bytes.count)
    }

    /// Appends `name=value` for a name only known at run time.
    mutating func append(name: String, _ value: String) {
        let start = bytes.count
        var name = name
        var value = value
        name.withUTF8 { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "="))
        value.withUTF8 { bytes.append(contentsOf: $0) }
        items.append(start..<bytes.count)
    }

    /// The items as text, in order (for tests and diagnostics).
    var pairs: [(String, String)] {
        items.map { item in
            let text = String(decoding: bytes[item], as: UTF8.self)
            let equals = text.firstIndex(of: "=")!
            return (String(text[..<equals]), String(text[text.index(after: equals)...]))
        }
    }

    /// Appends the stderr form of the entry to `line`: `edgeplan: MESSAGE` then every `EDGEPLAN_` item but the
    /// logger's, space-separated, and a newline.
    func appendLine(message: String, to line: inout [UInt8]) {
        line.append(contentsOf: "edgeplan: ".utf8)
        var message = message
        message.withUTF8 { line.append(contentsOf: $0) }
        bytes.withUnsafeBufferPointer { buffer in
            for item in items {
                let text = UnsafeBufferPointer(rebasing: buffer[item])
                guard text.starts(with: Self.edgeplanPrefix), !text.starts(with: Self.loggerPrefix) else { continue }
                line.append(UInt8(ascii: " "))
                line.append(contentsOf: text)
            }
        }
        line.append(UInt8(ascii: "\n"))
    }

    private static let edgeplanPrefix = Array("EDGEPLAN_".utf8), loggerPrefix = Array("EDGEPLAN_LOGGER=".utf8)
}
