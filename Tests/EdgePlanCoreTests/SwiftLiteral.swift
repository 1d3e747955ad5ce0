@testable import EdgePlanCore

/// Writes a value of plain structs, enums, arrays, dictionaries, optionals, strings and numbers as the Swift
/// expression that builds it, by reflection: the bundled profile's decoded form is written this way.
///
/// A struct is written as a call of its memberwise initializer, so it must have one whose labels are its stored
/// properties in order; a value that does not compile or does not equal the original fails its test.
enum SwiftLiteral {
    /// The expression for `value`, on one line when it fits in `width` columns after `indent`.
    static func expression(_ value: Any, indent: String = "", width: Int = 116) -> String {
        let line = oneLine(value)
        guard indent.count + line.count > width else { return line }
        let inner = indent + "    "
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .struct:
            let arguments = mirror.children.map {
                "\(inner)\($0.label!): \(expression($0.value, indent: inner, width: width))"
            }
            return "\(typeName(value))(\n\(arguments.joined(separator: ",\n")))"
        case .collection:
            let elements = mirror.children.map { "\(inner)\(expression($0.value, indent: inner, width: width))" }
            return "[\n\(elements.joined(separator: ",\n")),\n\(indent)]"
        case .dictionary:
            let pairs = entries(mirror).map {
                "\(inner)\(oneLine($0.key)): \(expression($0.value, indent: inner, width: width))"
            }
            return "[\n\(pairs.joined(separator: ",\n")),\n\(indent)]"
        case .optional:
            return mirror.children.first.map { expression($0.value, indent: indent, width: width) } ?? "nil"
        default:
            return line
        }
    }

    private static func oneLine(_ value: Any) -> String {
        switch value {
        case let text as String: return text.debugDescription
        case let number as Double:
            precondition(number.isFinite, "no literal for \(number)")
            return "\(number)"
        case let number as Int: return "\(number)"
        case let flag as Bool: return "\(flag)"
        // An open name: the build's own constants where they are one, else the checked initializer.
        case let quantization as Quantization:
            return quantization == .fp16
                ? ".fp16"
                : quantization == .awqW4
                    ? ".awqW4" : "Quantization(rawValue: \(quantization.rawValue.debugDescription))!"
        default: break
        }
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .struct:
            return "\(typeName(value))("
                + mirror.children.map { "\($0.label!): \(oneLine($0.value))" }.joined(separator: ", ") + ")"
        case .collection:
            return "[" + mirror.children.map { oneLine($0.value) }.joined(separator: ", ") + "]"
        case .dictionary:
            let pairs = entries(mirror)
            return pairs.isEmpty
                ? "[:]" : "[" + pairs.map { "\(oneLine($0.key)): \(oneLine($0.value))" }.joined(separator: ", ") + "]"
        case .optional:
            return mirror.children.first.map { oneLine($0.value) } ?? "nil"
        case .enum:
            guard let payload = mirror.children.first else { return ".\(value)" }
            let fields = Mirror(reflecting: payload.value).children.map { "\($0.label!): \(oneLine($0.value))" }
            return ".\(payload.label!)(\(fields.joined(separator: ", ")))"
        default:
            preconditionFailure("no literal for \(type(of: value))")
        }
    }

    /// A dictionary's entries, in the order of their keys' literals (dictionaries have none of their own).
    private static func entries(_ mirror: Mirror) -> [(key: Any, value: Any)] {
        mirror.children.map { child in
            let pair = Array(Mirror(reflecting: child.value).children)
            return (pair[0].value, pair[1].value)
        }.sorted { oneLine($0.key) < oneLine($1.key) }
    }

    private static func typeName(_ value: Any) -> String {
        let name = String(reflecting: type(of: value))
        return name.hasPrefix("EdgePlanCore.") ? String(name.dropFirst("EdgePlanCore.".count)) : name
    }
}
