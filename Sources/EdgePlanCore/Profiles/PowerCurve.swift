import Foundation

/// Average power of one phase as a function of its token count or its duration.
///
/// The paper's forms (Eqs. 4 and 6) are functions of tokens; the artifact's ramp is a function of time.
public enum PowerCurve: Sendable, Equatable {
    /// `constant_w` up to `threshold_tokens`, then `log_slope_w * ln(tokens) + log_intercept_w` (Eq. 4).
    case piecewiseLog(thresholdTokens: Double, constantW: Double, logSlopeW: Double, logInterceptW: Double)
    /// `slope_w_per_token * tokens + intercept_w`.
    case linear(slopeWPerToken: Double, interceptW: Double)
    /// The artifact's ramp `P(t) = steady - deficit * exp(-t / tau)`; average over a phase of `T` seconds.
    case ramp(steadyW: Double, initialDeficitW: Double, timeConstantS: Double)

    /// The average power in watts over a phase of `tokens` tokens lasting `seconds`.
    public func averagePowerW(tokens: Double, seconds: Double) -> Double {
        let watts: Double
        switch self {
        case let .piecewiseLog(threshold, constant, slope, intercept):
            watts = tokens <= threshold ? constant : max(constant, slope * Foundation.log(tokens) + intercept)
        case let .linear(slope, intercept):
            watts = slope * tokens + intercept
        case let .ramp(steady, deficit, tau):
            guard seconds > 0 else { return steady - deficit }
            watts = steady - deficit * tau / seconds * (1 - Foundation.exp(-seconds / tau))
        }
        return max(watts, 0)
    }

    /// The YAML `form` name of this curve.
    public var formName: String {
        switch self {
        case .piecewiseLog: "piecewise-log"
        case .linear: "linear"
        case .ramp: "ramp"
        }
    }
}
