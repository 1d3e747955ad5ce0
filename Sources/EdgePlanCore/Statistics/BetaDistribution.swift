import Foundation
import RealModule

/// A Beta(α, β) distribution: the belief about a probability, e.g. a configuration's accuracy.
public struct BetaDistribution: Sendable, Equatable {
    public var alpha: Double
    public var beta: Double

    public init(alpha: Double, beta: Double) {
        self.alpha = max(alpha, 1e-6)
        self.beta = max(beta, 1e-6)
    }

    /// The Beta with this mean whose weight (α + β) is `observations`, as if that many trials had been seen.
    public init(mean: Double, observations: Double) {
        let p = min(max(mean, 1e-6), 1 - 1e-6)
        self.init(alpha: p * observations, beta: (1 - p) * observations)
    }

    public var mean: Double { alpha / (alpha + beta) }
    public var weight: Double { alpha + beta }

    /// P(X ≤ x): the regularized incomplete beta function, by its continued fraction.
    public func cdf(_ x: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logFront =
            Double.logGamma(alpha + beta) - Double.logGamma(alpha) - Double.logGamma(beta)
            + alpha * log(x) + beta * log(1 - x)
        let front = exp(logFront)
        if x < (alpha + 1) / (alpha + beta + 2) {
            return front * Self.continuedFraction(alpha, beta, x) / alpha
        }
        return 1 - front * Self.continuedFraction(beta, alpha, 1 - x) / beta
    }

    /// The x with P(X ≤ x) = p: Newton steps on the cdf inside a bracket that shrinks with every evaluation; a
    /// step that would leave the bracket, or that does not at least halve the step before last, bisects instead
    /// (so it never converges slower than bisection). A handful of cdf evaluations instead of 60 halvings.
    public func quantile(_ p: Double) -> Double {
        guard p > 0 else { return 0 }
        guard p < 1 else { return 1 }
        let logNormalizer = Double.logGamma(alpha + beta) - Double.logGamma(alpha) - Double.logGamma(beta)
        var low = 0.0
        var high = 1.0
        var x = mean
        var step = 1.0
        var stepBefore = 1.0
        for _ in 0..<200 {
            let f = cdf(x) - p
            if f < 0 { low = x } else { high = x }
            let density = exp(logNormalizer + (alpha - 1) * log(x) + (beta - 1) * log(1 - x))
            var next = x - f / density
            if !(next > low && next < high) || abs(next - x) > stepBefore / 2 { next = (low + high) / 2 }
            stepBefore = step
            step = abs(next - x)
            x = next
            if step <= 1e-16 * max(x, 1e-300) || high - low <= 1e-16 { break }
        }
        return x
    }

    /// The central credible interval holding `mass` of the belief (0.8 gives the 10th and 90th percentiles).
    public func interval(_ mass: Double = 0.8) -> ClosedRange<Double> {
        quantile((1 - mass) / 2)...quantile((1 + mass) / 2)
    }

    /// Modified Lentz evaluation of the incomplete beta continued fraction.
    private static func continuedFraction(_ a: Double, _ b: Double, _ x: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var result = d
        for m in 1...300 {
            let m = Double(m)
            let even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + even * d
            if abs(d) < tiny { d = tiny }
            c = 1 + even / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            result *= d * c
            let odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + odd * d
            if abs(d) < tiny { d = tiny }
            c = 1 + odd / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            result *= delta
            if abs(delta - 1) < 1e-12 { break }
        }
        return result
    }
}
