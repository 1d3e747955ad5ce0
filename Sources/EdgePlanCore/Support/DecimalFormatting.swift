import Foundation

extension Double {
    /// The value rounded to `digits` significant digits, written in the shortest form that reads back exactly
    /// ("2959", "0.2623", "1e-05"); much cheaper than `String(format:)`, which sits on hot paths here.
    public func significantDigits(_ digits: Int) -> String {
        guard isFinite else { return isNaN ? "nan" : (self > 0 ? "inf" : "-inf") }
        if self == 0 { return "0" }
        let exponent = Int(Foundation.floor(Foundation.log10(Swift.abs(self))))
        let decimals = digits - 1 - exponent
        if decimals <= 0 {
            let integral = self.rounded()
            return Swift.abs(integral) < 9e15 ? String(Int(integral)) : integral.description
        }
        guard decimals < powersOfTen.count else { return description }
        let scaled = (self * powersOfTen[decimals]).rounded()
        // The decimal is the integer `scaled` with `decimals` digits after the point. Written directly where the
        // shortest round-trip form would be that same positional decimal (not exponential, at most 15 digits).
        if decimals <= 15, Swift.abs(scaled) < 9e15, Swift.abs(self) >= 1e-4 {
            return Self.positional(Int64(scaled), decimals: decimals)
        }
        // Dividing an integer by an exact power of ten is correctly rounded, so the shortest
        // round-trip form of the quotient is the intended decimal.
        let rounded = scaled / powersOfTen[decimals]
        if rounded == rounded.rounded(), Swift.abs(rounded) < 9e15 { return String(Int(rounded)) }
        return rounded.description
    }

    /// `scaled` × 10^-`decimals`, without trailing zeros or a bare point.
    private static func positional(_ scaled: Int64, decimals: Int) -> String {
        var magnitude = scaled.magnitude, fraction = decimals
        while fraction > 0 && magnitude % 10 == 0 {
            magnitude /= 10
            fraction -= 1
        }
        // At most a sign, 16 digits and a point: written from the right, then moved to the front.
        return String(unsafeUninitializedCapacity: 24) { buffer in
            var index = 24, written = 0
            repeat {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                written += 1
                if written == fraction {
                    index -= 1
                    buffer[index] = UInt8(ascii: ".")
                }
            } while magnitude > 0 || written <= fraction
            if scaled < 0 {
                index -= 1
                buffer[index] = UInt8(ascii: "-")
            }
            memmove(buffer.baseAddress!, buffer.baseAddress! + index, 24 - index)
            return 24 - index
        }
    }
}

/// 10^0 through 10^22, each exact in a Double.
private let powersOfTen: [Double] = (0...22).map { Foundation.pow(10, Double($0)) }
