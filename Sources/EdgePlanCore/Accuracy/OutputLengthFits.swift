import Foundation

/// Output-length distributions per task, model, mode and budget, fitted to the accuracy tables' mean lengths.
///
/// A hard cap censors the distribution that soft mode shows at the same budget, so a soft/hard pair pins a
/// log-normal down: its mean is the soft mean, and its spread is the one for which `E[min(L, B)]` equals the
/// hard mean. Rows without a pair take their measured mean with the median spread of their model family's
/// pairs; a family without pairs keeps the variant's assumed spread. Between budgets the log-normal's
/// parameters are interpolated in log budget.
public struct OutputLengthFits: Sendable {
    /// One soft/hard pair and the spread it implies.
    public struct PairFit: Sendable, Equatable {
        public var task: String
        public var variant: VariantID
        public var budgetTokens: Int
        public var softMeanTokens: Double
        public var hardMeanTokens: Double
        public var sigma: Double
        public var coefficientOfVariation: Double { (exp(sigma * sigma) - 1).squareRoot() }
        /// Chance that one sample hits the cap.
        public var capProbability: Double
    }

    private struct Key: Hashable {
        var task: String
        var group: AccuracyModel.Group
        var budget: Int?
    }

    public let pairs: [PairFit]
    /// Median log-normal sigma of each family's pairs.
    public let familySigma: [ModelFamily: Double]
    private let rows: [Key: OutputLengthModel]

    public init(profile: ProfileSet) {
        var pairs: [PairFit] = []
        var fittedSigma: [Key: Double] = [:]
        for (task, table) in profile.accuracy.sorted(by: { $0.key < $1.key }) {
            for hard in table.records where hard.capped && hard.mode == .hard {
                guard let budget = hard.budgetTokens,
                    let soft = table.records.first(where: {
                        $0.variant == hard.variant && $0.mode == .soft && $0.budgetTokens == budget && !$0.capped
                    }),
                    let sigma = Self.sigma(
                        softMean: soft.meanOutputTokens,
                        hardMean: hard.meanOutputTokens,
                        cap: Double(budget)
                    )
                else { continue }
                let model = OutputLengthModel(
                    uncappedMeanTokens: soft.meanOutputTokens,
                    sigma: sigma,
                    capTokens: budget,
                    source: .fitted
                )
                pairs.append(
                    PairFit(
                        task: task,
                        variant: hard.variant,
                        budgetTokens: budget,
                        softMeanTokens: soft.meanOutputTokens,
                        hardMeanTokens: hard.meanOutputTokens,
                        sigma: sigma,
                        capProbability: model.capProbability
                    )
                )
                fittedSigma[
                    Key(task: task, group: .init(variant: hard.variant, mode: .hard, capped: true), budget: budget)
                ] = sigma
                fittedSigma[
                    Key(task: task, group: .init(variant: hard.variant, mode: .soft, capped: false), budget: budget)
                ] = sigma
            }
        }
        var byFamily: [ModelFamily: [Double]] = [:]
        for pair in pairs {
            guard let family = profile.variants[pair.variant]?.family else { continue }
            byFamily[family, default: []].append(pair.sigma)
        }
        let familySigma = byFamily.mapValues { values -> Double in
            let sorted = values.sorted()
            return sorted.count % 2 == 1
                ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        var rows: [Key: OutputLengthModel] = [:]
        for (task, table) in profile.accuracy {
            for record in table.records {
                let group = AccuracyModel.Group(variant: record.variant, mode: record.mode, capped: record.capped)
                let key = Key(task: task, group: group, budget: record.budgetTokens)
                let cap = record.mode.lengthCap(budget: record.budgetTokens, capped: record.capped)
                if let sigma = fittedSigma[key] {
                    let softMean =
                        record.capped
                        ? table.records.first {
                            $0.variant == record.variant && $0.mode == .soft && $0.budgetTokens == record.budgetTokens
                        }!.meanOutputTokens
                        : record.meanOutputTokens
                    rows[key] = OutputLengthModel(
                        uncappedMeanTokens: softMean,
                        sigma: sigma,
                        capTokens: cap,
                        source: .fitted
                    )
                    continue
                }
                let family = profile.variants[record.variant]?.family
                let prior = family.flatMap { familySigma[$0] }
                let sigma =
                    prior
                    ?? OutputLengthModel.sigma(
                        coefficientOfVariation: profile.variants[record.variant]?.outputLength.coefficientOfVariation
                            ?? 0.5
                    )
                let source: LengthSource = prior == nil ? .assumed : .prior
                if let cap {
                    let mu = Self.mu(censoredMean: record.meanOutputTokens, sigma: sigma, cap: Double(cap))
                    rows[key] = OutputLengthModel(mu: mu, sigma: sigma, capTokens: cap, source: source)
                } else {
                    rows[key] = OutputLengthModel(
                        uncappedMeanTokens: record.meanOutputTokens,
                        sigma: sigma,
                        capTokens: nil,
                        source: source
                    )
                }
            }
        }
        self.pairs = pairs
        self.familySigma = familySigma
        self.rows = rows
    }

    /// The distribution of one group at a budget (nil for unbudgeted modes); interpolated between measured
    /// budgets and, above the last one of a capped group, toward the unconstrained run.
    public func model(
        task: String,
        group: AccuracyModel.Group,
        budget: Int?,
        accuracy: AccuracyModel
    ) -> OutputLengthModel? {
        if let exact = rows[Key(task: task, group: group, budget: budget)] { return exact }
        guard let budget else { return nil }
        let measured = accuracy.records(group).compactMap { record in
            record.budgetTokens.flatMap { b in rows[Key(task: task, group: group, budget: b)].map { (Double(b), $0) } }
        }
        guard var lower = measured.first, Double(budget) > lower.0 else { return nil }
        var upper: (Double, OutputLengthModel)?
        for point in measured {
            if point.0 < Double(budget) { lower = point } else if upper == nil { upper = point }
        }
        if upper == nil, group.capped, let release = unconstrained(task: task, group: group, accuracy: accuracy) {
            upper = (release.budget, release.model)
        }
        guard let upper else { return nil }
        let t = min(max((log(Double(budget)) - log(lower.0)) / (log(upper.0) - log(lower.0)), 0), 1)
        let mu = lower.1.mu + t * (upper.1.mu - lower.1.mu)
        let sigma = lower.1.sigma + t * (upper.1.sigma - lower.1.sigma)
        let source: LengthSource =
            lower.1.source == .fitted && upper.1.source == .fitted
            ? .fitted : (lower.1.source == .assumed ? .assumed : .prior)
        return OutputLengthModel(
            mu: mu,
            sigma: sigma,
            capTokens: group.mode.lengthCap(budget: budget, capped: group.capped),
            source: source
        )
    }

    /// The unconstrained run of a capped group and the budget where its cap stops binding (its 90th percentile).
    public func unconstrained(
        task: String,
        group: AccuracyModel.Group,
        accuracy: AccuracyModel
    ) -> (budget: Double, model: OutputLengthModel, accuracy: Double)? {
        guard group.capped, let record = accuracy.unconstrained(of: group),
            let model = rows[
                Key(task: task, group: .init(variant: record.variant, mode: record.mode, capped: false), budget: nil)
            ]
        else { return nil }
        return (model.quantile(0.9), model, record.accuracy)
    }

    /// The accuracy model of a table with its hard-cap curves extended toward the unconstrained runs these fits give.
    public func accuracyModel(_ table: AccuracyTable) -> AccuracyModel {
        let plain = AccuracyModel(table: table)
        return AccuracyModel(table: table) {
            unconstrained(task: table.task, group: $0, accuracy: plain).map { ($0.budget, $0.accuracy) }
        }
    }

    /// The spread for which a log-normal with mean `softMean`, capped at `cap`, has mean `hardMean`.
    public static func sigma(softMean: Double, hardMean: Double, cap: Double) -> Double? {
        guard hardMean < min(softMean, cap) * 0.999 else { return nil }
        var low = 1e-3
        var high = 6.0
        for _ in 0..<80 {
            let mid = (low + high) / 2
            let mean = OutputLengthModel.censoredMean(mu: log(softMean) - mid * mid / 2, sigma: mid, cap: cap)
            if mean > hardMean { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    /// The log-mean for which a log-normal of spread `sigma`, capped at `cap`, has mean `censoredMean`.
    public static func mu(censoredMean: Double, sigma: Double, cap: Double) -> Double {
        var low = -5.0
        var high = log(cap) + 4 * sigma + 5
        for _ in 0..<80 {
            let mid = (low + high) / 2
            if OutputLengthModel.censoredMean(mu: mid, sigma: sigma, cap: cap) < censoredMean {
                low = mid
            } else {
                high = mid
            }
        }
        return (low + high) / 2
    }
}
