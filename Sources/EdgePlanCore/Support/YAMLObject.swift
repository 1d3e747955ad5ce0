import Synchronization
import Yams

/// A strict reader over one YAML mapping: typed fields, line numbers in errors, unknown keys rejected.
///
/// Every profile and policy file is read through this type, so each error names file, line and field.
package struct YAMLObject {
    package let file: String
    package let path: String
    private let mapping: Node.Mapping
    /// The mapping's values by key, indexed once: `Node.Mapping`'s own subscript compares whole nodes, tags and all.
    private let values: [String: Node]
    private var seen: Set<String> = []

    package init(mapping: Node.Mapping, file: String, path: String) {
        self.mapping = mapping
        self.file = file
        self.path = path
        var values: [String: Node] = [:]
        for (key, value) in mapping {
            if let name = key.scalar?.string, values[name] == nil { values[name] = value }
        }
        self.values = values
    }

    /// Parses `text` and returns its top-level mapping.
    package static func parse(_ text: String, file: String) throws -> YAMLObject {
        let node: Node?
        do {
            // No implicit tags: every scalar stays text and the accessors below parse it. Resolving tags costs a
            // regular-expression match per scalar, a third of a CLI command's time. The encoding is named: the
            // library's default reads the whole process environment on every parse (a tenth of a profile's decode).
            node = try Yams.compose(yaml: text, .basic, .default, .utf8)
        } catch {
            throw EdgePlanError.invalidFile("not valid YAML: \(error)", file: file)
        }
        guard let mapping = node?.mapping else {
            throw EdgePlanError.invalidFile("expected a mapping at the top level", file: file, line: node?.mark?.line)
        }
        return YAMLObject(mapping: mapping, file: file, path: "")
    }

    package var line: Int? { mapping.mark?.line }

    /// The mapping's keys, in file order.
    package var fieldNames: [String] { mapping.keys.compactMap(\.string) }

    /// Every field path a reader asks for while a log is set (`YAMLObject.$keyLog.withValue`): what a file of that
    /// kind may hold, so its reference can be checked against the decoder.
    package final class KeyLog: Sendable {
        private let paths = Mutex<Set<String>>([])
        package init() {}
        package var keys: Set<String> { paths.withLock { $0 } }
        func record(_ path: String) { paths.withLock { _ = $0.insert(path) } }
    }

    @TaskLocal package static var keyLog: KeyLog?

    private mutating func ask(_ key: String) {
        seen.insert(key)
        Self.keyLog?.record(fieldPath(key))
    }

    private func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    package func error(_ key: String, _ message: String) -> EdgePlanError {
        .invalidFile(message, file: file, line: values[key]?.mark?.line ?? line, field: fieldPath(key))
    }

    package func has(_ key: String) -> Bool {
        guard let node = values[key] else { return false }
        return node.null == nil
    }

    private mutating func node(_ key: String) throws -> Node {
        ask(key)
        guard let node = values[key], node.null == nil else {
            let stem = key.split(separator: "_").dropLast().joined(separator: "_")
            let near = mapping.keys.compactMap(\.string).first {
                $0 != key && !stem.isEmpty && $0.hasPrefix(stem) && !seen.contains($0)
            }
            let hint = near.map { " (found '\($0)': field names carry their unit, e.g. '\(key)')" } ?? ""
            throw EdgePlanError.invalidFile(
                "missing required field\(hint)",
                file: file,
                line: line,
                field: fieldPath(key)
            )
        }
        return node
    }

    package mutating func string(_ key: String) throws -> String {
        let node = try node(key)
        guard let value = node.scalar?.string, node.scalar != nil else { throw error(key, "expected a string") }
        return value
    }

    package mutating func optionalString(_ key: String) throws -> String? {
        ask(key)
        return has(key) ? try string(key) : nil
    }

    package mutating func double(_ key: String, in range: ClosedRange<Double>? = nil) throws -> Double {
        let node = try node(key)
        guard let value = Self.number(node) else {
            throw error(key, "expected a number, found '\(node.string ?? "a collection")'")
        }
        guard value.isFinite else { throw error(key, "must be a finite number") }
        if let range, !range.contains(value) {
            throw error(key, "\(value) is outside the allowed range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// A plain scalar written as a decimal number is read with `Double(_:)`, which is what the YAML library does for
    /// it too, after a lower-casing and a Foundation string replacement per scalar. Anything else (underscores,
    /// sexagesimal, `.inf`, quoted text) goes the library's way.
    private static func number(_ node: Node) -> Double? {
        guard let scalar = node.scalar else { return nil }
        if scalar.style == .plain || scalar.style == .any, scalar.string.utf8.allSatisfy(isDecimalByte),
            let value = Double(scalar.string)
        {
            return value
        }
        return node.float ?? node.int.map(Double.init)
    }

    /// A plain scalar of digits, with no sign and no leading zero (YAML 1.1 reads those as octal), is read with
    /// `Int(_:)`; anything else the YAML library's way.
    private static func integer(_ node: Node) -> Int? {
        guard let scalar = node.scalar else { return nil }
        let digits = scalar.string.utf8
        if scalar.style == .plain || scalar.style == .any, digits.first != UInt8(ascii: "0"),
            digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }), let value = Int(scalar.string)
        {
            return value
        }
        return node.int
    }

    private static func isDecimalByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"),
            UInt8(ascii: "+"), UInt8(ascii: "-"):
            true
        default: false
        }
    }

    /// Checks the file's `kind`; a missing or wrong one names the line to write (`kind: policy`).
    package mutating func expectKind(_ expected: String) throws {
        guard has("kind") else {
            ask("kind")
            throw error("kind", "missing; a \(expected) file starts with the line 'kind: \(expected)'")
        }
        let found = try string("kind")
        guard found == expected else {
            throw error("kind", "expected 'kind: \(expected)', found '\(found)'")
        }
    }

    /// Whether the key holds exactly this word (a number field that also takes `off`, say).
    package mutating func holds(_ key: String, word: String) -> Bool {
        ask(key)
        guard let node = values[key], node.null == nil, node.scalar != nil else { return false }
        return node.string == word
    }

    package mutating func optionalDouble(_ key: String, in range: ClosedRange<Double>? = nil) throws -> Double? {
        ask(key)
        return has(key) ? try double(key, in: range) : nil
    }

    package mutating func int(_ key: String, in range: ClosedRange<Int>? = nil) throws -> Int {
        let node = try node(key)
        guard let value = Self.integer(node) else {
            throw error(key, "expected an integer, found '\(node.string ?? "a collection")'")
        }
        if let range, !range.contains(value) {
            throw error(key, "\(value) is outside the allowed range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    package mutating func optionalInt(_ key: String, in range: ClosedRange<Int>? = nil) throws -> Int? {
        ask(key)
        return has(key) ? try int(key, in: range) : nil
    }

    package mutating func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
        ask(key)
        guard has(key) else { return defaultValue }
        let node = try node(key)
        guard node.scalar?.style == .plain, let text = node.scalar?.string,
            let value = ["true": true, "false": false][text.lowercased()]
        else {
            throw error(key, "expected true or false")
        }
        return value
    }

    package mutating func object(_ key: String) throws -> YAMLObject {
        let node = try node(key)
        guard let mapping = node.mapping else { throw error(key, "expected a mapping") }
        return YAMLObject(mapping: mapping, file: file, path: fieldPath(key))
    }

    package mutating func optionalObject(_ key: String) throws -> YAMLObject? {
        ask(key)
        return has(key) ? try object(key) : nil
    }

    /// The entries of a mapping-valued field, in file order.
    package mutating func objectMap(_ key: String) throws -> [(String, YAMLObject)] {
        let node = try node(key)
        guard let mapping = node.mapping else { throw error(key, "expected a mapping") }
        return try mapping.map { entry in
            guard let name = entry.key.string else { throw error(key, "keys must be strings") }
            guard let value = entry.value.mapping else {
                throw EdgePlanError.invalidFile(
                    "expected a mapping",
                    file: file,
                    line: entry.value.mark?.line,
                    field: fieldPath("\(key).\(name)")
                )
            }
            return (name, YAMLObject(mapping: value, file: file, path: fieldPath("\(key).\(name)")))
        }
    }

    package mutating func objects(_ key: String) throws -> [YAMLObject] {
        let node = try node(key)
        guard let sequence = node.sequence else { throw error(key, "expected a list") }
        return try sequence.enumerated().map { index, element in
            guard let mapping = element.mapping else {
                throw EdgePlanError.invalidFile(
                    "expected a mapping",
                    file: file,
                    line: element.mark?.line,
                    field: fieldPath("\(key)[\(index)]")
                )
            }
            return YAMLObject(mapping: mapping, file: file, path: fieldPath("\(key)[\(index)]"))
        }
    }

    package mutating func strings(_ key: String) throws -> [String] {
        let node = try node(key)
        guard let sequence = node.sequence else { throw error(key, "expected a list of strings") }
        return try sequence.map { element in
            guard let value = element.scalar?.string else { throw error(key, "expected a list of strings") }
            return value
        }
    }

    package mutating func optionalStrings(_ key: String) throws -> [String]? {
        ask(key)
        return has(key) ? try strings(key) : nil
    }

    /// Throws when the mapping holds a key that no accessor asked for: typos and unit-less names are errors.
    package func finish() throws {
        for entry in mapping {
            guard let key = entry.key.string else { continue }
            if !seen.contains(key) {
                let hint =
                    Self.nearest(key, among: seen).map { "; did you mean '\($0)'?" }
                    ?? "; the fields here are \(seen.sorted().joined(separator: ", "))"
                throw EdgePlanError.invalidFile(
                    "unknown field '\(key)'\(hint)",
                    file: file,
                    line: entry.key.mark?.line,
                    field: fieldPath(key)
                )
            }
        }
    }

    /// The known field an unknown one most likely meant: one that extends it (`energy` → `energy_budget`), or one
    /// within a few edits of it (a typo), nearest first; nil when none is close.
    static func nearest(_ key: String, among known: Set<String>) -> String? {
        let lowered = key.lowercased()
        if let extended = known.filter({ $0.hasPrefix(lowered + "_") || lowered.hasPrefix($0 + "_") }).min(by: {
            $0.count < $1.count
        }) {
            return extended
        }
        let limit = max(1, lowered.count / 3)
        let scored = known.map { ($0, editDistance(lowered, $0)) }.filter { $0.1 <= limit }
        return scored.min { ($0.1, $0.0) < ($1.1, $1.0) }?.0
    }

    /// Levenshtein distance between two short strings.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

}
