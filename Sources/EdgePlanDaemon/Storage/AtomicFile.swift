import EdgePlanCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writes files so that a crash at any point leaves either the old content or the new, never a torn file.
public enum AtomicFile {
    /// Writes `data` to a temporary file beside `path`, fsyncs it, renames it over `path`, then fsyncs the directory.
    public static func write(_ data: [UInt8], to path: String, mode: mode_t = 0o644) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary =
            "\(directory.isEmpty ? "." : directory)/.\((path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw EdgePlanError(.io, "cannot create \(temporary): \(String(cString: strerror(errno)))", file: path)
        }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        var offset = 0
        while offset < data.count {
            let written = data[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                close(fd)
                throw EdgePlanError(.io, "write failed: \(String(cString: strerror(errno)))", file: path)
            }
            offset += written
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw EdgePlanError(.io, "fsync failed: \(String(cString: strerror(errno)))", file: path)
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            throw EdgePlanError(.io, "rename failed: \(String(cString: strerror(errno)))", file: path)
        }
        ok = true
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }

    public static func write(_ text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }
}
