extension StringProtocol {
    /// The text without leading or trailing whitespace (spaces, tabs, newlines), by a plain scan: trimming through
    /// Foundation bridges every line of a million-task workload to `NSString` and back.
    public var trimmed: String {
        let text = String(self)
        // Most text starts and ends with a visible ASCII character: nothing to scan.
        if let first = text.utf8.first, let last = text.utf8.last, first > 0x20, first < 0x7F, last > 0x20, last < 0x7F
        {
            return text
        }
        guard let first = text.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let last = text.lastIndex(where: { !$0.isWhitespace })!
        return String(text[first...last])
    }
}
