import EdgePlanCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads an input file whole, or says why it cannot: no such file, a directory where a file belongs, no permission.
public enum FileText {
    /// The file's bytes; `what` names the file's role in the error ("policy file", "trace").
    public static func data(_ path: String, what: String = "file") throws -> Data {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw EdgePlanError(.io, "cannot read \(what): it is a directory; give a file", file: path)
        }
        if let data = FileManager.default.contents(atPath: path) { return data }
        let descriptor = open(path, O_RDONLY)
        let reason = descriptor < 0 ? String(cString: strerror(errno)) : "read failed"
        if descriptor >= 0 { close(descriptor) }
        throw EdgePlanError(.io, "cannot read \(what): \(reason)", file: path)
    }

    /// The file's text, which must be UTF-8.
    public static func text(_ path: String, what: String = "file") throws -> String {
        guard let text = String(data: try data(path, what: what), encoding: .utf8) else {
            throw EdgePlanError.invalidFile("not UTF-8 text", file: path)
        }
        return text
    }
}
