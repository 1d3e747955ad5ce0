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
        // Dividing an integer by an exact power of ten is correctly rounded, so the shortest
        // round-trip form of the quotient is the intended decimal.
        guard decimals <= 22 else { return description }
        let scale = Foundation.pow(10, Double(decimals))
        let rounded = (self * scale).rounded() / scale
        if rounded == rounded.rounded(), Swift.abs(rounded) < 9e15 { return String(Int(rounded)) }
        return rounded.description
    }
}
