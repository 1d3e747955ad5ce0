import Foundation

extension Double {
    /// The value rounded to `digits` significant digits, written in the shortest form that reads back exactly
    /// ("2959", "0.2623", "1e-05"); much cheaper than `String(format:)`, which sits on hot paths here.
    public func significantDigits(_ digits: Int) -> String {
        switch decimalForm(digits) {
        case let .positional(scaled, decimals):
            String(unsafeUninitializedCapacity: Self.positionalCapacity) {
                Self.writePositional(scaled, decimals: decimals, to: $0.baseAddress!)
            }
        case let .text(text): text
        }
    }

    /// Hands what ``significantDigits(_:)`` returns to `body` as bytes, without making a string on the common path.
    func withSignificantDigits<Result>(_ digits: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        switch decimalForm(digits) {
        case let .positional(scaled, decimals):
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.positionalCapacity) { buffer in
                let count = Self.writePositional(scaled, decimals: decimals, to: buffer.baseAddress!)
                return body(UnsafeBufferPointer(rebasing: buffer[..<count]))
            }
        case var .text(text):
            text.withUTF8(body)
        }
    }

    private enum DecimalForm {
        /// `scaled` × 10^-`decimals`.
        case positional(Int64, Int)
        case text(String)
    }

    private func decimalForm(_ digits: Int) -> DecimalForm {
        guard isFinite else { return .text(isNaN ? "nan" : (self > 0 ? "inf" : "-inf")) }
        if self == 0 { return .text("0") }
        let exponent = Int(Foundation.floor(Foundation.log10(Swift.abs(self))))
        let decimals = digits - 1 - exponent
        if decimals <= 0 {
            let integral = self.rounded()
            return Swift.abs(integral) < 9e15 ? .positional(Int64(integral), 0) : .text(integral.description)
        }
        guard decimals < powersOfTen.count else { return .text(description) }
        let scaled = (self * powersOfTen[decimals]).rounded()
        // The decimal is the integer `scaled` with `decimals` digits after the point. Written directly where the
        // shortest round-trip form would be that same positional decimal (not exponential, at most 15 digits).
        if decimals <= 15, Swift.abs(scaled) < 9e15, Swift.abs(self) >= 1e-4 {
            return .positional(Int64(scaled), decimals)
        }
        // Dividing an integer by an exact power of ten is correctly rounded, so the shortest
        // round-trip form of the quotient is the intended decimal.
        let rounded = scaled / powersOfTen[decimals]
        if rounded == rounded.rounded(), Swift.abs(rounded) < 9e15 { return .positional(Int64(rounded), 0) }
        return .text(rounded.description)
    }

    /// At most a sign, 16 digits and a point.
    private static let positionalCapacity = 24

    /// Writes `scaled` × 10^-`decimals` without trailing zeros or a bare point; returns the bytes written.
    private static func writePositional(_ scaled: Int64, decimals: Int, to out: UnsafeMutablePointer<UInt8>) -> Int {
        var magnitude = scaled.magnitude
        var fraction = decimals
        while fraction > 0 && magnitude % 10 == 0 {
            magnitude /= 10
            fraction -= 1
        }
        // Written from the right, then moved to the front.
        var index = positionalCapacity
        var written = 0
        repeat {
            index -= 1
            out[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            written += 1
            if written == fraction {
                index -= 1
                out[index] = UInt8(ascii: ".")
            }
        } while magnitude > 0 || written <= fraction
        if scaled < 0 {
            index -= 1
            out[index] = UInt8(ascii: "-")
        }
        memmove(out, out + index, positionalCapacity - index)
        return positionalCapacity - index
    }
}

/// 10^0 through 10^22, each exact in a Double.
private let powersOfTen: [Double] = (0...22).map { Foundation.pow(10, Double($0)) }
