import Foundation

/// Accuracy as a function of token budget for one task, with provenance and an interval for every point.
///
/// Measured budgets are joined monotonically in log tokens (a larger budget never predicts less). A hard-capped
/// curve is extended above its largest measured budget toward the same variant's unconstrained run, reached
/// where the cap stops binding (``OutputLengthFits/releaseBudget``): those points are `modeled`, with an interval
/// spanning both ends. Below the smallest measured budget nothing is offered.
public struct AccuracyModel: Sendable {
    public struct Group: Sendable, Hashable, Comparable, CustomStringConvertible {
        public var variant: VariantID
        public var mode: LengthMode
        public var capped: Bool

        public init(variant: VariantID, mode: LengthMode, capped: Bool) {
            self.variant = variant
            self.mode = mode
            self.capped = capped
        }

        public var description: String { "\(variant) \(mode.rawValue)\(capped && mode != .hard ? " capped" : "")" }
        public static func < (lhs: Group, rhs: Group) -> Bool { lhs.description < rhs.description }
    }

    /// Where a capped curve meets the unconstrained run: its budget and accuracy.
    struct Release: Sendable {
        var budget: Double
        var accuracy: Double
    }

    public let table: AccuracyTable
    private let budgeted: [Group: [AccuracyRecord]]
    private let unbudgeted: [Group: AccuracyRecord]
    private let releases: [Group: Release]

    /// `releaseBudget` gives, for a capped group, the budget above which its cap no longer binds (nil: no extension).
    public init(table: AccuracyTable, releaseBudget: (Group) -> (budget: Double, accuracy: Double)? = { _ in nil }) {
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
        self.table = table
        self.budgeted = budgeted.mapValues { $0.sorted { $0.budgetTokens! < $1.budgetTokens! } }
        self.unbudgeted = unbudgeted
        var releases: [Group: Release] = [:]
        for (group, records) in self.budgeted where group.capped {
            if let release = releaseBudget(group), release.budget > Double(records.last!.budgetTokens!) * 1.5 {
                releases[group] = Release(budget: release.budget, accuracy: release.accuracy)
            }
        }
        self.releases = releases
    }

    /// The measured rows of a budgeted group, by budget.
    public func records(_ group: Group) -> [AccuracyRecord] { budgeted[group] ?? [] }

    /// Every (group, budget) the model can answer for: measured budgets, `steps` points between neighbours, and
    /// powers of two on a capped curve's extension.
    public func candidateBudgets(intermediateSteps steps: Int = 3) -> [(Group, Int?)] {
        var result: [(Group, Int?)] = unbudgeted.keys.sorted().map { ($0, nil) }
        for (group, records) in budgeted.sorted(by: { $0.key < $1.key }) {
            let budgets = records.compactMap(\.budgetTokens)
            var points = Set(budgets)
            for (low, high) in zip(budgets, budgets.dropFirst()) where steps > 0 {
                for step in 1...steps {
                    let t = Double(step) / Double(steps + 1)
                    let value =
                        Int((exp(log(Double(low)) + t * (log(Double(high)) - log(Double(low)))) / 8).rounded()) * 8
                    if value > low && value < high { points.insert(value) }
                }
            }
            if let release = releases[group], let last = budgets.last {
                var budget = 1
                while budget <= last { budget *= 2 }
                while Double(budget) < release.budget {
                    points.insert(budget)
                    budget *= 2
                }
            }
            result += points.sorted().map { (group, $0) }
        }
        return result
    }

    /// The single-sample estimate for a group at a budget (nil budget for unbudgeted modes), or nil outside the data.
    public func estimate(_ group: Group, budget: Int?) -> AccuracyEstimate? {
        let questions = table.questions
        guard let budget else {
            return unbudgeted[group].map { AccuracyEstimate.measured($0.accuracy, questions: questions) }
        }
        guard let records = budgeted[group], let first = records.first, let last = records.last,
            budget >= first.budgetTokens!
        else { return nil }
        if budget > last.budgetTokens! {
            guard let release = releases[group], Double(budget) < release.budget else { return nil }
            // The modeled extension: from the last measured budget toward the unconstrained accuracy.
            let envelope = records.map(\.accuracy).max()!
            let target = max(release.accuracy, envelope)
            let t =
                (log(Double(budget)) - log(Double(last.budgetTokens!)))
                / (log(release.budget) - log(Double(last.budgetTokens!)))
            let accuracy = envelope + t * (target - envelope)
            let spread = AccuracyEstimate.halfWidth(accuracy, questions: questions)
            return AccuracyEstimate(accuracy: accuracy, low: envelope - spread, high: target + spread, source: .modeled)
        }
        var envelope = 0.0
        var previous: (budget: Double, accuracy: Double)? = nil
        for record in records {
            envelope = max(envelope, record.accuracy)
            if record.budgetTokens! == budget {
                if record.accuracy == envelope { return .measured(envelope, questions: questions) }
                // Below a smaller budget's measurement: the monotone envelope holds, the measurement bounds it.
                let spread = AccuracyEstimate.halfWidth(envelope, questions: questions)
                return AccuracyEstimate(
                    accuracy: envelope,
                    low: record.accuracy - spread,
                    high: envelope + spread,
                    source: .interpolated
                )
            }
            if let previous, Double(budget) < Double(record.budgetTokens!) {
                let t =
                    (log(Double(budget)) - log(previous.budget))
                    / (log(Double(record.budgetTokens!)) - log(previous.budget))
                let accuracy = previous.accuracy + t * (envelope - previous.accuracy)
                let spread = AccuracyEstimate.halfWidth(accuracy, questions: questions)
                return AccuracyEstimate(
                    accuracy: accuracy,
                    low: previous.accuracy - spread,
                    high: envelope + spread,
                    source: .interpolated
                )
            }
            previous = (Double(record.budgetTokens!), envelope)
        }
        return nil
    }

    /// The unconstrained counterpart of a capped group: base mode for hard caps, the uncapped mode otherwise.
    public func unconstrained(of group: Group) -> AccuracyRecord? {
        let mode: LengthMode = group.mode == .hard ? .base : group.mode
        return unbudgeted[Group(variant: group.variant, mode: mode, capped: false)]
    }

    /// A thinking-budget run at `budget` that no table measured: the model thinks up to the budget, then answers.
    /// It answers at least as well as the better of a hard cut at that budget (which may stop before any answer)
    /// and no reasoning at all, and no better than unconstrained reasoning: the estimate is that lower end, and the
    /// interval spans all three, so the planner sees how little is known. Nil without a hard curve at the budget.
    public func modeledThinkingBudget(variant: VariantID, budget: Int) -> AccuracyEstimate? {
        let hardGroup = Group(variant: variant, mode: .hard, capped: true)
        guard let hard = estimate(hardGroup, budget: budget) else { return nil }
        let noThinking = unbudgeted[Group(variant: variant, mode: .noReasoning, capped: false)]?.accuracy
        let unconstrained = unconstrained(of: hardGroup)?.accuracy
        let floor = max(hard.accuracy, noThinking ?? 0)
        let top = max(unconstrained ?? floor, floor)
        let spread = AccuracyEstimate.halfWidth(floor, questions: table.questions)
        return AccuracyEstimate(
            accuracy: floor,
            low: max(0, min(hard.low, noThinking ?? hard.low) - spread),
            high: min(1, top + spread),
            source: .modeled
        )
    }

    /// Best measured single-sample accuracy of a model (any quantization, mode, budget) on this task.
    public func bestMeasured(model: String) -> Double? {
        table.records.filter { $0.variant.model == model }.map(\.accuracy).max()
    }
}
