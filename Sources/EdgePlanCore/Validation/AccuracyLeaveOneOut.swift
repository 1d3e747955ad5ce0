import Foundation

/// Leave-one-out over the accuracy tables: each measured cell is predicted from the others by the same
/// interpolation and hard-cap extension the planner uses, and compared with its measurement.
///
/// A cell the remaining data cannot reach (the smallest budget of its curve, an unbudgeted row, or a curve with
/// nothing left) is counted as not predicted: the planner would not offer that point either.
public enum AccuracyLeaveOneOut {
    public struct Cell: Sendable, Equatable {
        public var task: String
        public var record: AccuracyRecord
        /// The held-out prediction, or nil when the planner would offer nothing there.
        public var predicted: AccuracyEstimate?
        public var errorPoints: Double? { predicted.map { abs($0.accuracy - record.accuracy) * 100 } }
        /// Whether the measurement fell inside the prediction's 80 % interval.
        public var covered: Bool? {
            predicted.map { $0.low <= record.accuracy + 1e-12 && record.accuracy <= $0.high + 1e-12 }
        }
    }

    /// Mean absolute error per model and mode over the predicted cells.
    public struct Summary: Sendable, Equatable {
        public var model: String
        public var mode: LengthMode
        public var predicted: Int
        public var notPredicted: Int
        public var meanAbsoluteErrorPoints: Double?
        public var covered: Int
    }

    public static func run(profile: ProfileSet) -> [Cell] {
        var cells: [Cell] = []
        for task in profile.tasks {
            let table = profile.accuracy[task]!
            for (index, record) in table.records.enumerated() where record.budgetTokens != nil {
                var reduced = table
                reduced.records.remove(at: index)
                var held = profile
                held.accuracy[task] = reduced
                let lengths = OutputLengthFits(profile: held)
                let model = lengths.accuracyModel(reduced)
                let group = AccuracyModel.Group(variant: record.variant, mode: record.mode, capped: record.capped)
                cells.append(
                    Cell(task: task, record: record, predicted: model.estimate(group, budget: record.budgetTokens))
                )
            }
            for record in table.records where record.budgetTokens == nil {
                cells.append(Cell(task: task, record: record, predicted: nil))
            }
        }
        return cells
    }

    public static func summarize(_ cells: [Cell]) -> [Summary] {
        let groups = Dictionary(grouping: cells) { "\($0.record.variant.model)|\($0.record.mode.rawValue)" }
        return groups.values.map { cells in
            let errors = cells.compactMap(\.errorPoints)
            return Summary(
                model: cells[0].record.variant.model,
                mode: cells[0].record.mode,
                predicted: errors.count,
                notPredicted: cells.count - errors.count,
                meanAbsoluteErrorPoints: errors.isEmpty ? nil : errors.reduce(0, +) / Double(errors.count),
                covered: cells.compactMap(\.covered).filter { $0 }.count
            )
        }.sorted { ($0.model, $0.mode.rawValue) < ($1.model, $1.mode.rawValue) }
    }
}
