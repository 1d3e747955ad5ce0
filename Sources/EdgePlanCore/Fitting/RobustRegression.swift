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
        guard features.allSatisfy({ $0.count == width }) else { throw EdgePlanError.invalidInput("every observation needs \(width) features") }
        guard targets.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw EdgePlanError.invalidInput("targets must be positive and finite") }
        let design = Design(rows: features, width: width)
        // Relative error divides by the target; a floor keeps a near-zero (likely bogus) target from taking
        // all the weight.
        let floor = 0.05 * median(targets)
        let scales = targets.map { max($0, floor) }
        // Start from a least-absolute-relative-error fit (IRLS): unlike least squares it is not dragged by a
        // few absurd targets, so the biweights below start from a sensible scale.
        var beta = try design.solve(targets: targets, weights: scales.map { 1 / ($0 * $0) })
        for _ in 0..<10 {
            let residuals = design.relativeResiduals(targets: targets, scales: scales, beta: beta)
            let l1 = (0..<targets.count).map { i in 1 / (scales[i] * scales[i] * max(abs(residuals[i]), 1e-4)) }
            let next = try design.solve(targets: targets, weights: l1)
            defer { beta = next }
            if converged(beta, next, tolerance: 1e-7) { break }
        }
        var weights = biweights(design.relativeResiduals(targets: targets, scales: scales, beta: beta), minimumScale: minimumScale)
        for _ in 0..<iterations {
            let next = try design.solve(targets: targets, weights: zip(weights, scales).map { $0 / ($1 * $1) })
            let settled = converged(beta, next, tolerance: 1e-9)
            beta = next
            weights = biweights(design.relativeResiduals(targets: targets, scales: scales, beta: beta), minimumScale: minimumScale)
            if settled { break }
        }
        return Result(coefficients: beta, weights: weights)
    }

    private static func converged(_ a: [Double], _ b: [Double], tolerance: Double) -> Bool {
        zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(abs($0), abs($1), 1e-300) }
    }

    /// Tukey biweights of relative residuals over their MAD scale.
    static func biweights(_ residuals: [Double], minimumScale: Double) -> [Double] {
        let center = median(residuals)
        let scale = max(1.4826 * median(residuals.map { abs($0 - center) }), minimumScale)
        return residuals.map { r -> Double in
            let u = r / (tukeyC * scale)
            return abs(u) < 1 ? (1 - u * u) * (1 - u * u) : 0
        }
    }

    /// Solves the weighted normal equations by Gaussian elimination with partial pivoting.
    public static func weightedLeastSquares(features: [[Double]], targets: [Double], weights: [Double]) throws -> [Double] {
        try Design(rows: features, width: features[0].count).solve(targets: targets, weights: weights)
    }

    /// The features as one flat row-major array, for tight loops.
    struct Design {
        let values: [Double]
        let width: Int
        let count: Int

        init(rows: [[Double]], width: Int) {
            var values: [Double] = []
            values.reserveCapacity(rows.count * width)
            for row in rows { values += row }
            self.values = values
            self.width = width
            self.count = rows.count
        }

        func relativeResiduals(targets: [Double], scales: [Double], beta: [Double]) -> [Double] {
            values.withUnsafeBufferPointer { x in
                (0..<count).map { i in
                    var predicted = 0.0
                    for j in 0..<width { predicted += x[i * width + j] * beta[j] }
                    return (targets[i] - predicted) / scales[i]
                }
            }
        }

        func solve(targets: [Double], weights: [Double]) throws -> [Double] {
            var matrix = [Double](repeating: 0, count: width * (width + 1))
            let stride = width + 1
            values.withUnsafeBufferPointer { x in
                for row in 0..<count {
                    let w = weights[row]
                    guard w > 0 else { continue }
                    let base = row * width
                    for i in 0..<width {
                        let wxi = w * x[base + i]
                        for j in 0..<width { matrix[i * stride + j] += wxi * x[base + j] }
                        matrix[i * stride + width] += wxi * targets[row]
                    }
                }
            }
            // Scale columns so that features of very different magnitude (I^2 vs 1) stay well conditioned.
            let scales = (0..<width).map { i in max(matrix[i * stride + i].squareRoot(), 1e-300) }
            for i in 0..<width {
                for j in 0..<width { matrix[i * stride + j] /= scales[i] * scales[j] }
                matrix[i * stride + width] /= scales[i]
            }
            for column in 0..<width {
                let pivot = (column..<width).max { abs(matrix[$0 * stride + column]) < abs(matrix[$1 * stride + column]) }!
                guard abs(matrix[pivot * stride + column]) > 1e-12 else {
                    throw EdgePlanError.invalidInput("observations do not cover enough range to fit coefficient \(column)")
                }
                if pivot != column {
                    for k in 0...width { matrix.swapAt(column * stride + k, pivot * stride + k) }
                }
                for row in 0..<width where row != column {
                    let factor = matrix[row * stride + column] / matrix[column * stride + column]
                    for k in column...width { matrix[row * stride + k] -= factor * matrix[column * stride + k] }
                }
            }
            return (0..<width).map { matrix[$0 * stride + width] / matrix[$0 * stride + $0] / scales[$0] }
        }
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    /// The median, by selection (linear time) rather than a full sort.
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        var scratch = values
        let mid = scratch.count / 2
        let upper = select(&scratch, mid)
        guard scratch.count % 2 == 0 else { return upper }
        // The lower middle is the largest value left of the upper one after selection.
        let lower = scratch[..<mid].max()!
        return (lower + upper) / 2
    }

    /// Rearranges `values` so that index `k` holds the k-th smallest and returns it (Hoare's selection).
    static func select(_ values: inout [Double], _ k: Int) -> Double {
        values.withUnsafeMutableBufferPointer { v in
            var low = 0, high = v.count - 1
            while low < high {
                let pivot = v[(low + high) / 2]
                var i = low, j = high
                while i <= j {
                    while v[i] < pivot { i += 1 }
                    while v[j] > pivot { j -= 1 }
                    if i <= j {
                        v.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                if k <= j { high = j } else if k >= i { low = i } else { break }
            }
            return v[k]
        }
    }
}
