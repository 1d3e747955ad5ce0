import Foundation

/// A one-line progress bar on standard error, drawn only when standard error is a terminal.
struct ProgressBar {
    let total: Int
    let enabled: Bool
    private(set) var done = 0

    init(total: Int, enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.total = max(total, 1)
        self.enabled = enabled
    }

    mutating func advance(_ label: String, by step: Int = 1, eta: String? = nil) {
        done = min(total, done + step)
        guard enabled else { return }
        let width = 30
        let filled = width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        FileHandle.standardError.write(
            Data("\r[\(bar)] \(done * 100 / total)% \(eta.map { "ETA \($0) " } ?? "")\(label.prefix(40))\u{1B}[K".utf8)
        )
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
