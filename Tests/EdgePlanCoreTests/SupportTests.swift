import Foundation
import Testing

@testable import EdgePlanCore

@Suite struct SupportTests {
    @Test func significantDigitsRoundAndStayShort() {
        #expect(2959.123.significantDigits(4) == "2959")
        #expect(0.26234.significantDigits(4) == "0.2623")
        #expect(64.9.significantDigits(4) == "64.9")
        #expect(123456.7.significantDigits(4) == "123457")
        #expect((-0.000012345).significantDigits(3) == "-1.23e-05")
        #expect(0.0.significantDigits(4) == "0")
        #expect(Double.nan.significantDigits(4) == "nan")
        #expect(0.1.significantDigits(6) == "0.1")
    }

    /// Positional decimals are written digit by digit; they must read exactly as the shortest round-trip form of the
    /// rounded value that `description` gives.
    @Test func significantDigitsMatchTheShortestRoundTripForm() {
        var random = SeededRandom(state: 7)
        for _ in 0..<20_000 {
            let magnitude = Foundation.pow(10, random.next() * 20 - 8)
            let value = (random.next() < 0.5 ? -1 : 1) * magnitude * (1 + random.next())
            for digits in [3, 4, 6, 9] {
                let exponent = Int(Foundation.floor(Foundation.log10(abs(value))))
                let decimals = digits - 1 - exponent
                guard decimals > 0, decimals <= 22 else { continue }
                let scale = Foundation.pow(10, Double(decimals))
                let rounded = (value * scale).rounded() / scale
                let expected =
                    rounded == rounded.rounded() && abs(rounded) < 9e15 ? String(Int(rounded)) : rounded.description
                #expect(value.significantDigits(digits) == expected, "\(value) to \(digits) digits")
            }
        }
        #expect(0.0001.significantDigits(4) == "0.0001")
        #expect((-9.99996).significantDigits(5) == "-10")
        #expect(1.05.significantDigits(6) == "1.05")
    }

    /// Strings are scanned eight bytes at a time; every escape must land wherever it falls in a word.
    @Test func jsonStringsEscapeAtEveryPosition() throws {
        var random = SeededRandom(state: 3)
        let specials: [Character] = ["\"", "\\", "\n", "\u{1}", "\u{1f}", "é", " ", "~", "\u{7f}"]
        for _ in 0..<2_000 {
            let length = Int(random.next() * 40)
            let text = String(
                (0..<length).map { _ in
                    random.next() < 0.15
                        ? specials[Int(random.next() * Double(specials.count))]
                        : Character(UnicodeScalar(UInt8(97 + Int(random.next() * 26))))
                }
            )
            var expected = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": expected += "\\\""
                case "\\": expected += "\\\\"
                case "\n": expected += "\\n"
                case "\u{1}": expected += "\\u0001"
                case "\u{1f}": expected += "\\u001f"
                default: expected.unicodeScalars.append(scalar)
                }
            }
            expected += "\""
            #expect(JSONValue.string(text).serialized() == expected)
            #expect(try JSONValue.parse(Array(expected.utf8)).stringValue == text)
        }
    }

    @Test func jsonEscapesControlCharactersAndRoundTrips() throws {
        let value = JSONValue.object([("text", .string("a\"b\\c\nd\u{1}é")), ("x", .number(1.0 / 3))])
        let text = value.serialized()
        #expect(text == #"{"text":"a\"b\\c\nd\u0001é","x":0.333333}"#)
        #expect(try JSONValue.parse(Array(text.utf8))["text"]?.stringValue == "a\"b\\c\nd\u{1}é")
    }

    @Test func selectionMedianMatchesSorting() {
        var random = SeededRandom(state: 11)
        for count in [1, 2, 3, 10, 101, 1000] {
            for _ in 0..<20 {
                let values = (0..<count).map { _ in (random.next() * 10).rounded() }  // many ties
                let sorted = values.sorted()
                let expected = count % 2 == 0 ? (sorted[count / 2 - 1] + sorted[count / 2]) / 2 : sorted[count / 2]
                #expect(RobustRegression.median(values) == expected)
            }
        }
    }
}

struct StrictJSONTests {
    @Test func numbersFollowRFC8259() throws {
        for bad in ["+5000", "05000", ".5e4", "5.", "-", "1e", "1e+", "-01", "0x10", "1.5.2", "--1"] {
            #expect(throws: EdgePlanError.self, "\(bad)") { try JSONValue.parse(Array("{\"a\":\(bad)}".utf8)) }
        }
        for (good, value) in [
            ("0", 0.0), ("-0", 0), ("5000", 5000), ("0.5", 0.5), ("-12.5e-1", -1.25), ("1E3", 1000), ("2e+2", 200),
        ] {
            #expect(try JSONValue.parse(Array("{\"a\":\(good)}".utf8))["a"]?.doubleValue == value, "\(good)")
        }
    }

    @Test func duplicateKeysAreRejectedInSmallAndLargeObjects() throws {
        #expect(throws: EdgePlanError.self) { try JSONValue.parse(Array(#"{"deadlineMs": 1, "deadlineMs": 2}"#.utf8)) }
        let many = (0..<50).map { "\"k\($0)\": \($0)" }.joined(separator: ", ")
        #expect(throws: EdgePlanError.self) { try JSONValue.parse(Array("{\(many), \"k7\": 0}".utf8)) }
        #expect(try JSONValue.parse(Array("{\(many)}".utf8))["k49"]?.intValue == 49)
    }
}

struct UnknownFieldTests {
    @Test func anUnknownPolicyFieldSuggestsTheNearestKnownOne() throws {
        for (key, suggestion) in [
            ("energy", "did you mean 'energy_budget'?"), ("dedline", "did you mean 'deadline'?"),
            ("zzzz", "the fields here are allowed_models"),
        ] {
            let text = "kind: policy\ntasks:\n  grasp:\n    like: mmlu-redux\n    \(key): 2s\n"
            #expect("\(key)") { try PolicyDecoder.decode(text, file: "p.yaml") } throws: {
                let error = $0 as? EdgePlanError
                return error?.line == 5 && error?.field == "tasks.grasp.\(key)"
                    && error?.message.contains("unknown field '\(key)'; \(suggestion)") == true
            }
        }
        #expect(YAMLObject.editDistance("kitten", "sitting") == 3 && YAMLObject.editDistance("", "abc") == 3)
    }
}

struct QuantityTests {
    @Test func quantitiesNeedUnits() throws {
        #expect(try QuantityParser.seconds("250ms") == 0.25)
        #expect(try QuantityParser.seconds("2m") == 120)
        #expect(try QuantityParser.joules("1.5kJ") == 1500)
        for bare in ["5000", "5", "0.5"] {
            #expect { try QuantityParser.seconds(bare, field: "deadline") } throws: {
                ($0 as? EdgePlanError)?.message.contains("no unit") == true
            }
            #expect(throws: EdgePlanError.self) { try QuantityParser.joules(bare) }
        }
        for bad in ["-3s", "0s", "5 parsecs", "s", ""] {
            #expect(throws: EdgePlanError.self, "\(bad)") { try QuantityParser.seconds(bad) }
        }
        // Case carries meaning: mWh is not MWh, and Ms (a megasecond) is no millisecond.
        #expect(try QuantityParser.joules("1mWh") == 3.6)
        #expect(try QuantityParser.joules("1MWh") == 3.6e9)
        #expect(try QuantityParser.joules("2kWh") == 7.2e6)
        for (bad, parse) in [
            ("5Ms", { try QuantityParser.seconds("5Ms") }), ("200j", { try QuantityParser.joules("200j") }),
        ] {
            #expect("\(bad)") { _ = try parse() } throws: {
                let message = ($0 as? EdgePlanError)?.message ?? ""
                return message.contains("case-sensitive") && (message.contains("ms, s") || message.contains("J, kJ"))
            }
        }
        #expect { try PolicyDecoder.decode("kind: policy\ndefaults:\n  deadline: 30\n", file: "p.yaml") } throws: {
            ($0 as? EdgePlanError)?.line == 3 && ($0 as? EdgePlanError)?.field == "defaults.deadline"
        }
    }
}

struct PolicyVersionTests {
    @Test func theVersionIsTheContentNotThePath() throws {
        let text = "kind: policy\ndefaults:\n  deadline: 30s\n"
        let a = try PolicyDecoder.decode(text, file: "/etc/edgeplan/policy.yaml")
        let b = try PolicyDecoder.decode(text, file: "policies/default.yaml")
        let c = try PolicyDecoder.decode(text + "  max_parallel: 8\n", file: "/etc/edgeplan/policy.yaml")
        #expect(a.version == b.version)
        #expect(a.version != c.version)
    }

    /// A hash below 2^60 keeps its leading zeros: every version has 16 hex digits (one had 15).
    @Test func everyVersionHasSixteenDigits() throws {
        let policy = try PolicyDecoder.decode("kind: policy\n# 2000\n", file: "policy.yaml")
        #expect(policy.version == "007124dd5c4b45f5")
    }
}
