import Foundation

/// A policy under simulation: a planner policy and the feedback it uses, or a fixed configuration.
public struct SimulatedPolicy: Sendable {
    public enum Kind: Sendable {
        case planner(recalibrate: Bool, learn: Bool)
        case fixed(Configuration)
    }

    public var name: String
    public var policy: Policy
    public var kind: Kind

    public init(name: String, policy: Policy, kind: Kind) {
        self.name = name
        self.policy = policy
        self.kind = kind
    }

    /// The built-in baselines on a policy: `static` (no recalibration, no learning), `mean-latency` (plans on mean
    /// latency as the paper does), `no-learning`, `ledger-on` and `ledger-off` (the ledger of admitted runs, which
    /// matters with overlapping tasks), `fixed:MODEL/QUANT/MODE[/BUDGET]xK`.
    public static func baseline(_ name: String, on policy: Policy) throws -> SimulatedPolicy {
        switch name {
        case "static":
            return SimulatedPolicy(name: name, policy: policy, kind: .planner(recalibrate: false, learn: false))
        case "mean-latency":
            var mean = policy
            mean.latencyBasis = .mean
            return SimulatedPolicy(name: name, policy: mean, kind: .planner(recalibrate: true, learn: true))
        case "no-learning":
            return SimulatedPolicy(name: name, policy: policy, kind: .planner(recalibrate: true, learn: false))
        case "ledger-on", "ledger-off":
            // The same policy with the ledger of admitted runs on or off: on a shared engine (overlapping tasks),
            // whether each request is planned against what already runs.
            var shared = policy
            shared.ledger = name == "ledger-on"
            return SimulatedPolicy(name: name, policy: shared, kind: .planner(recalibrate: true, learn: true))
        default:
            guard name.hasPrefix("fixed:") else {
                throw EdgePlanError.invalidInput(
                    "unknown baseline '\(name)'; use static, mean-latency, no-learning, ledger-on, ledger-off or fixed:MODEL/QUANT/MODE[/BUDGET]xK",
                    field: "baseline"
                )
            }
            let spec = name.dropFirst(6)
            let parts = spec.split(separator: "x", omittingEmptySubsequences: false)
            guard parts.count >= 2, let k = Int(parts.last!), k >= 1 else {
                throw EdgePlanError.invalidInput(
                    "'\(name)': give the parallel factor after 'x', e.g. fixed:DSR1-Qwen-1.5B/fp16/hard/128x4",
                    field: "baseline"
                )
            }
            let fields = parts.dropLast().joined(separator: "x").split(separator: "/").map(String.init)
            guard fields.count == 3 || fields.count == 4, let quant = Quantization(rawValue: fields[1]),
                let mode = LengthMode(rawValue: fields[2])
            else {
                throw EdgePlanError.invalidInput("'\(name)' is not MODEL/QUANT/MODE[/BUDGET]xK", field: "baseline")
            }
            let budget = fields.count == 4 ? Int(fields[3]) : nil
            if fields.count == 4 && budget == nil {
                throw EdgePlanError.invalidInput("'\(fields[3])' is not a token budget", field: "baseline")
            }
            return SimulatedPolicy(
                name: name,
                policy: policy,
                kind: .fixed(
                    Configuration(
                        variant: VariantID(model: fields[0], quantization: quant),
                        mode: mode,
                        budgetTokens: budget,
                        capped: mode == .hard,
                        parallel: k
                    )
                )
            )
        }
    }
}
