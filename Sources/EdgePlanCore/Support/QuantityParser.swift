import Foundation

/// Parses human-friendly quantities with units: durations (`250ms`, `5s`, `2m`) and energies (`200J`, `1.5kJ`).
public enum QuantityParser {
    /// Seconds from a duration such as `250ms`, `5s`, `2m`, `1h`, `1d` or `1500us`. A bare number is an error naming
    /// the units (is `5000` seconds or milliseconds?), unless `requireUnit` is off.
    public static func seconds(
        _ text: String,
        field: String = "duration",
        requireUnit: Bool = true,
        allowZero: Bool = false
    ) throws -> Double {
        try parse(
            text,
            field: field,
            units: durationUnits,
            what: "duration",
            example: "250ms, 5s or 2m",
            requireUnit: requireUnit,
            allowZero: allowZero
        )
    }

    /// Joules from an energy such as `200J`, `1.5kJ` or `0.1Wh`; a bare number is an error unless `requireUnit` is off.
    /// Units are case-sensitive (see ``energySpellings``).
    public static func joules(_ text: String, field: String = "energy", requireUnit: Bool = true) throws -> Double {
        try parse(
            text,
            field: field,
            units: energyUnits,
            what: "energy",
            example: "200J or 1.5kJ",
            requireUnit: requireUnit
        )
    }

    /// Units are case-sensitive, since case carries meaning in them: `ms` is a millisecond, `Ms` would be a
    /// megasecond; `mWh` a milliwatt-hour, `MWh` a megawatt-hour. Each table lists its spellings in order.
    static let durationSpellings: [(String, Double)] = [
        ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("min", 60), ("h", 3600), ("d", 86_400),
    ]
    static let energySpellings: [(String, Double)] = [
        ("J", 1), ("kJ", 1000), ("MJ", 1e6), ("mWh", 3.6), ("Wh", 3600), ("kWh", 3.6e6), ("MWh", 3.6e9),
    ]
    static let durationUnits = Dictionary(uniqueKeysWithValues: durationSpellings)
    static let energyUnits = Dictionary(uniqueKeysWithValues: energySpellings)

    private static func parse(
        _ text: String,
        field: String,
        units: [String: Double],
        what: String,
        example: String,
        requireUnit: Bool = false,
        allowZero: Bool = false
    ) throws -> Double {
        let trimmed = text.trimmed
        // The number's characters are ASCII (digits, sign, point, exponent): scanned as bytes.
        let numberEnd =
            trimmed.utf8.firstIndex { byte in
                !((byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".")
                    || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E"))
            } ?? trimmed.endIndex
        // An 'e' may belong to a unit; back off characters until the number parses.
        var split = numberEnd
        var value: Double? = nil
        while split > trimmed.startIndex {
            if let parsed = Double(trimmed[trimmed.startIndex..<split]) {
                value = parsed
                break
            }
            split = trimmed.index(before: split)
        }
        guard let value else {
            throw EdgePlanError.invalidInput(
                "'\(text)' is not a \(what); use a number with a unit, e.g. \(example)",
                field: field
            )
        }
        let unit = trimmed[split...].trimmed
        let spellings = (what == "energy" ? energySpellings : durationSpellings).map(\.0).joined(separator: ", ")
        let scale: Double
        if unit.isEmpty {
            if requireUnit {
                let names = spellings
                throw EdgePlanError.invalidInput(
                    "'\(text)' has no unit; give the \(what) with one, e.g. \(example) (units: \(names))",
                    field: field
                )
            }
            scale = 1
        } else if let known = units[unit] {
            scale = known
        } else {
            throw EdgePlanError.invalidInput(
                "unknown unit '\(unit)' in '\(text)'; units are case-sensitive: \(spellings) (e.g. \(example))",
                field: field
            )
        }
        let result = value * scale
        guard result.isFinite else { throw EdgePlanError.invalidInput("'\(text)' is not finite", field: field) }
        guard result > 0 || (allowZero && result == 0) else {
            throw EdgePlanError.invalidInput("\(what) must be positive, got '\(text)'", field: field)
        }
        return result
    }
}
