import Foundation

/// Where a predicted accuracy comes from.
public enum AccuracySource: String, Sendable, Equatable, Codable {
    /// A row of the accuracy table.
    case measured
    /// Between two measured budgets of the same model and mode.
    case interpolated
}

/// Single-sample accuracy and mean output length of one variant and mode at a token budget.
public struct AccuracyEstimate: Sendable, Equatable {
    public var accuracy: Double
    public var meanOutputTokens: Double
    public var source: AccuracySource
    public var capped: Bool
}

/// Accuracy as a function of token budget for one task: measured points joined monotonically in log tokens.
///
/// Between measured budgets the accuracy follows the running maximum of the measurements, so a larger budget
/// never predicts less; below the smallest measured budget and above the largest nothing is offered, so no
/// figure is invented beyond the data.
public struct AccuracyModel: Sendable {
    public struct Group: Sendable, Hashable {
        public var variant: VariantID
        public var mode: LengthMode
        public var capped: Bool

        public init(variant: VariantID, mode: LengthMode, capped: Bool) {
            self.variant = variant
            self.mode = mode
            self.capped = capped
        }
    }

    private let budgeted: [Group: [AccuracyRecord]]
    private let unbudgeted: [Group: AccuracyRecord]

    public init(table: AccuracyTable) {
        var budgeted: [Group: [AccuracyRecord]] = [:]
        var unbudgeted: [Group: AccuracyRecord] = [:]
        for record in table.records {
            let group = Group(variant: record.variant, mode: record.mode, capped: record.capped)
            if record.budgetTokens == nil {
                unbudgeted[group] = record
            } else {
                budgeted[group, default: []].append(record)
            }
        }
        self.budgeted = budgeted.mapValues { $0.sorted { $0.budgetTokens! < $1.budgetTokens! } }
        self.unbudgeted = unbudgeted
    }

    /// Every (group, budget) the model can answer for: measured budgets plus `steps` points between neighbours.
    public func candidateBudgets(intermediateSteps steps: Int = 3) -> [(Group, Int?)] {
        var result: [(Group, Int?)] = unbudgeted.keys.sorted { "\($0)" < "\($1)" }.map { ($0, nil) }
        for (group, records) in budgeted.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            let budgets = records.compactMap(\.budgetTokens)
            var points = Set(budgets)
            for (low, high) in zip(budgets, budgets.dropFirst()) where steps > 0 {
                for step in 1...steps {
                    let t = Double(step) / Double(steps + 1)
                    let value = Int((exp(log(Double(low)) + t * (log(Double(high)) - log(Double(low)))) / 8).rounded()) * 8
                    if value > low && value < high { points.insert(value) }
                }
            }
            result += points.sorted().map { (group, $0) }
        }
        return result
    }

    /// The estimate for a group at a budget (nil budget for unbudgeted modes), or nil outside the measured range.
    public func estimate(_ group: Group, budget: Int?) -> AccuracyEstimate? {
        guard let budget else {
            return unbudgeted[group].map { AccuracyEstimate(accuracy: $0.accuracy, meanOutputTokens: $0.meanOutputTokens, source: .measured, capped: false) }
        }
        guard let records = budgeted[group], let first = records.first, let last = records.last,
              budget >= first.budgetTokens!, budget <= last.budgetTokens! else { return nil }
        var envelope = 0.0
        var previous: (budget: Double, accuracy: Double, tokens: Double)? = nil
        for record in records {
            envelope = max(envelope, record.accuracy)
            let point = (budget: Double(record.budgetTokens!), accuracy: envelope, tokens: record.meanOutputTokens)
            if record.budgetTokens! == budget {
                return AccuracyEstimate(accuracy: envelope, meanOutputTokens: record.meanOutputTokens, source: record.accuracy == envelope ? .measured : .interpolated, capped: group.capped)
            }
            if let previous, Double(budget) < point.budget {
                let t = (log(Double(budget)) - log(previous.budget)) / (log(point.budget) - log(previous.budget))
                var tokens = exp(log(previous.tokens) + t * (log(point.tokens) - log(previous.tokens)))
                if group.capped { tokens = min(tokens, Double(budget)) }
                return AccuracyEstimate(
                    accuracy: previous.accuracy + t * (point.accuracy - previous.accuracy),
                    meanOutputTokens: tokens, source: .interpolated, capped: group.capped)
            }
            previous = point
        }
        return nil
    }
}
