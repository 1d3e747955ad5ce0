import Foundation

/// Linear least squares on relative error with Tukey biweights: outliers and hostile points get weight zero.
///
/// Minimizes `sum w_i ((y_i - x_i·β) / y_i)^2`, re-weighting by the biweight of each relative residual
/// over a MAD scale (iteratively reweighted least squares). Relative error matches how MAPE is judged.
public enum RobustRegression {
    public struct Result: Sendable, Equatable {
        public var coefficients: [Double]
        /// Final weight of each observation, 0 for rejected outliers.
        public var weights: [Double]
        public var rejected: Int { weights.filter { $0 == 0 }.count }
    }

    /// Tukey's tuning constant (95% efficiency under normal errors).
    public static let tukeyC = 4.685

    public static func fit(features: [[Double]], targets: [Double], iterations: Int = 30, minimumScale: Double = 1e-3) throws -> Result {
        guard let width = features.first?.count, width > 0 else { throw EdgePlanError.invalidInput("no observations to fit") }
        guard features.count == targets.count, features.count >= width else {
            throw EdgePlanError.invalidInput("need at least \(width) observations to fit \(width) coefficients, got \(features.count)")
        }
        guard targets.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw EdgePlanError.invalidInput("targets must be positive and finite") }
        // Relative error divides by the target; a floor keeps a near-zero (likely bogus) target from taking
        // all the weight.
        let floor = 0.05 * median(targets)
        let scales = targets.map { max($0, floor) }
        var weights = [Double](repeating: 1, count: targets.count)
        // Start from a least-absolute-relative-error fit (IRLS): unlike least squares it is not dragged by a
        // few absurd targets, so the biweights below start from a sensible scale.
        var beta = try weightedLeastSquares(features: features, targets: targets, weights: scales.map { 1 / ($0 * $0) })
        for _ in 0..<20 {
            let l1 = (0..<targets.count).map { i in 1 / (scales[i] * scales[i] * max(abs((targets[i] - dot(features[i], beta)) / scales[i]), 1e-4)) }
            beta = try weightedLeastSquares(features: features, targets: targets, weights: l1)
        }
        weights = Self.biweights(features: features, targets: targets, scales: scales, beta: beta, minimumScale: minimumScale)
        for _ in 0..<iterations {
            beta = try weightedLeastSquares(features: features, targets: targets, weights: zip(weights, scales).map { $0 / ($1 * $1) })
            let updated = Self.biweights(features: features, targets: targets, scales: scales, beta: beta, minimumScale: minimumScale)
            if zip(updated, weights).allSatisfy({ abs($0 - $1) < 1e-9 }) { weights = updated; break }
            weights = updated
        }
        return Result(coefficients: beta, weights: weights)
    }

    /// Tukey biweights of the relative residuals over their MAD scale.
    static func biweights(features: [[Double]], targets: [Double], scales: [Double], beta: [Double], minimumScale: Double) -> [Double] {
        let residuals = (0..<targets.count).map { i in (targets[i] - dot(features[i], beta)) / scales[i] }
        let center = median(residuals)
        let scale = max(1.4826 * median(residuals.map { abs($0 - center) }), minimumScale)
        return residuals.map { r -> Double in
            let u = r / (tukeyC * scale)
            return abs(u) < 1 ? (1 - u * u) * (1 - u * u) : 0
        }
    }

    /// Solves the weighted normal equations by Gaussian elimination with partial pivoting.
    public static func weightedLeastSquares(features: [[Double]], targets: [Double], weights: [Double]) throws -> [Double] {
        let width = features[0].count
        var matrix = [[Double]](repeating: [Double](repeating: 0, count: width + 1), count: width)
        for (row, (x, y)) in zip(features, targets).enumerated() {
            let w = weights[row]
            guard w > 0 else { continue }
            for i in 0..<width {
                for j in 0..<width { matrix[i][j] += w * x[i] * x[j] }
                matrix[i][width] += w * x[i] * y
            }
        }
        // Scale columns so that features of very different magnitude (I^2 vs 1) stay well conditioned.
        let scales = (0..<width).map { i in max(matrix[i][i].squareRoot(), 1e-300) }
        for i in 0..<width {
            for j in 0..<width { matrix[i][j] /= scales[i] * scales[j] }
            matrix[i][width] /= scales[i]
        }
        for column in 0..<width {
            let pivot = (column..<width).max { abs(matrix[$0][column]) < abs(matrix[$1][column]) }!
            guard abs(matrix[pivot][column]) > 1e-12 else {
                throw EdgePlanError.invalidInput("observations do not cover enough range to fit coefficient \(column)")
            }
            matrix.swapAt(column, pivot)
            for row in 0..<width where row != column {
                let factor = matrix[row][column] / matrix[column][column]
                for k in column...width { matrix[row][k] -= factor * matrix[column][k] }
            }
        }
        return (0..<width).map { matrix[$0][width] / matrix[$0][$0] / scales[$0] }
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 0 ? (sorted[mid - 1] + sorted[mid]) / 2 : sorted[mid]
    }
}
