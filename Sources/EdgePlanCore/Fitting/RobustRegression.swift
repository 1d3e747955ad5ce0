import Foundation

/// Linear least squares on relative error with Tukey biweights: outliers and hostile points get weight zero.
///
/// Minimizes `sum w_i ((y_i - x_i·β) / y_i)^2`, re-weighting by the biweight of each relative residual
/// over the MAD scale of a robust start (iteratively reweighted least squares). Relative error matches how
/// MAPE is judged.
public enum RobustRegression {
    public struct Result: Sendable, Equatable {
        public var coefficients: [Double]
        /// Final weight of each observation, 0 for rejected outliers.
        public var weights: [Double]
        public var rejected: Int { weights.filter { $0 == 0 }.count }
    }

    /// Tukey's tuning constant (95% efficiency under normal errors).
    public static let tukeyC = 4.685

    public static func fit(
        features: [[Double]],
        targets: [Double],
        iterations: Int = 30,
        minimumScale: Double = 1e-3
    ) throws -> Result {
        guard let width = features.first?.count, width > 0 else {
            throw EdgePlanError.invalidInput("no observations to fit")
        }
        guard features.count == targets.count, features.count >= width else {
            throw EdgePlanError.invalidInput(
                "need at least \(width) observations to fit \(width) coefficients, got \(features.count)"
            )
        }
        guard features.allSatisfy({ $0.count == width }) else {
            throw EdgePlanError.invalidInput("every observation needs \(width) features")
        }
        return try fit(
            design: Design(rows: features, width: width),
            targets: targets,
            iterations: iterations,
            minimumScale: minimumScale
        )
    }

    /// The same fit on features given row by row in one flat array of `width` values a row.
    public static func fit(
        flatFeatures: [Double],
        width: Int,
        targets: [Double],
        iterations: Int = 30,
        minimumScale: Double = 1e-3
    ) throws -> Result {
        guard width > 0, flatFeatures.count == width * targets.count, targets.count >= width else {
            throw EdgePlanError.invalidInput(
                "need at least \(width) observations of \(width) features each, got \(targets.count) targets and \(flatFeatures.count) values"
            )
        }
        return try fit(
            design: Design(values: flatFeatures, width: width),
            targets: targets,
            iterations: iterations,
            minimumScale: minimumScale
        )
    }

    private static func fit(design: Design, targets: [Double], iterations: Int, minimumScale: Double) throws -> Result {
        guard targets.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw EdgePlanError.invalidInput("targets must be positive and finite")
        }
        let count = targets.count
        // Relative error divides by the target; a floor keeps a near-zero (likely bogus) target from taking
        // all the weight.
        let floor = 0.05 * median(targets)
        let scales = targets.map { max($0, floor) }
        // Buffers reused by every iteration: a refit runs dozens of them over thousands of runs.
        var residuals = [Double](repeating: 0, count: count)
        var weights = scales.map { 1 / ($0 * $0) }
        var scratch = [Double](repeating: 0, count: count)
        // Start from a least-absolute-relative-error fit (IRLS): unlike least squares it is not dragged by a
        // few absurd targets, so the biweights below start from a sensible scale.
        var beta = try design.solve(targets: targets, weights: weights)
        for _ in 0..<10 {
            design.relativeResiduals(targets: targets, scales: scales, beta: beta, into: &residuals)
            for i in 0..<count { weights[i] = 1 / (scales[i] * scales[i] * max(abs(residuals[i]), 1e-4)) }
            let next = try design.solve(targets: targets, weights: weights)
            defer { beta = next }
            if converged(beta, next, tolerance: 1e-7) { break }
        }
        design.relativeResiduals(targets: targets, scales: scales, beta: beta, into: &residuals)
        // The residual scale is taken once, from the robust start, and held while the biweights iterate (as the
        // second stage of an MM-estimator does): each step then lowers the same objective, and no step pays for
        // two more medians.
        let scale = madScale(residuals, minimumScale: minimumScale, scratch: &scratch)
        tukeyWeights(residuals, scale: scale, into: &weights)
        var scaled = [Double](repeating: 0, count: count)
        for _ in 0..<iterations {
            for i in 0..<count { scaled[i] = weights[i] / (scales[i] * scales[i]) }
            let next = try design.solve(targets: targets, weights: scaled)
            let settled = converged(beta, next, tolerance: 1e-9)
            beta = next
            design.relativeResiduals(targets: targets, scales: scales, beta: beta, into: &residuals)
            tukeyWeights(residuals, scale: scale, into: &weights)
            if settled { break }
        }
        return Result(coefficients: beta, weights: weights)
    }

    private static func converged(_ a: [Double], _ b: [Double], tolerance: Double) -> Bool {
        zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(abs($0), abs($1), 1e-300) }
    }

    /// The residuals' scale: 1.4826 times their median absolute deviation (consistent for normal errors), with
    /// `scratch` (as long as `residuals`) for the medians.
    static func madScale(_ residuals: [Double], minimumScale: Double, scratch: inout [Double]) -> Double {
        let count = residuals.count
        for i in 0..<count { scratch[i] = residuals[i] }
        let center = median(inPlace: &scratch)
        for i in 0..<count { scratch[i] = abs(residuals[i] - center) }
        return max(1.4826 * median(inPlace: &scratch), minimumScale)
    }

    /// Tukey biweights of residuals at a given scale, into `weights`.
    static func tukeyWeights(_ residuals: [Double], scale: Double, into weights: inout [Double]) {
        let width = tukeyC * scale
        for i in 0..<residuals.count {
            let u = residuals[i] / width
            weights[i] = abs(u) < 1 ? (1 - u * u) * (1 - u * u) : 0
        }
    }

    /// Solves the weighted normal equations by Gaussian elimination with partial pivoting.
    public static func weightedLeastSquares(
        features: [[Double]],
        targets: [Double],
        weights: [Double]
    ) throws -> [Double] {
        try Design(rows: features, width: features[0].count).solve(targets: targets, weights: weights)
    }

    /// The features as one flat row-major array, for tight loops.
    struct Design {
        let values: [Double]
        let width: Int
        let count: Int

        init(values: [Double], width: Int) {
            self.values = values
            self.width = width
            self.count = values.count / width
        }

        init(rows: [[Double]], width: Int) {
            var values: [Double] = []
            values.reserveCapacity(rows.count * width)
            for row in rows { values += row }
            self.values = values
            self.width = width
            self.count = rows.count
        }

        func relativeResiduals(targets: [Double], scales: [Double], beta: [Double], into residuals: inout [Double]) {
            values.withUnsafeBufferPointer { x in
                targets.withUnsafeBufferPointer { y in
                    scales.withUnsafeBufferPointer { s in
                        residuals.withUnsafeMutableBufferPointer { r in
                            if width == 2 {
                                let b0 = beta[0]
                                let b1 = beta[1]
                                for i in 0..<count { r[i] = (y[i] - x[2 * i] * b0 - x[2 * i + 1] * b1) / s[i] }
                                return
                            }
                            for i in 0..<count {
                                var predicted = 0.0
                                for j in 0..<width { predicted += x[i * width + j] * beta[j] }
                                r[i] = (y[i] - predicted) / s[i]
                            }
                        }
                    }
                }
            }
        }

        /// The augmented weighted normal equations `[XᵀWX | XᵀWy]`, row-major.
        func normalEquations(targets: [Double], weights: [Double]) -> [Double] {
            var matrix = [Double](repeating: 0, count: width * (width + 1))
            let stride = width + 1
            values.withUnsafeBufferPointer { x in
                weights.withUnsafeBufferPointer { w in
                    targets.withUnsafeBufferPointer { y in
                        if width == 2 {
                            // The recalibration's shape (n and m of Eq. 2), unrolled: five running sums.
                            var s00 = 0.0
                            var s01 = 0.0
                            var s11 = 0.0
                            var t0 = 0.0
                            var t1 = 0.0
                            for row in 0..<count {
                                let x0 = x[2 * row]
                                let x1 = x[2 * row + 1]
                                let weight = w[row]
                                let w0 = weight * x0
                                let w1 = weight * x1
                                s00 += w0 * x0
                                s01 += w0 * x1
                                s11 += w1 * x1
                                t0 += w0 * y[row]
                                t1 += w1 * y[row]
                            }
                            matrix = [s00, s01, t0, s01, s11, t1]
                            return
                        }
                        for row in 0..<count where w[row] > 0 {
                            let base = row * width
                            for i in 0..<width {
                                let wxi = w[row] * x[base + i]
                                for j in 0..<width { matrix[i * stride + j] += wxi * x[base + j] }
                                matrix[i * stride + width] += wxi * y[row]
                            }
                        }
                    }
                }
            }
            return matrix
        }

        func solve(targets: [Double], weights: [Double]) throws -> [Double] {
            var matrix = normalEquations(targets: targets, weights: weights)
            let stride = width + 1
            // Scale columns so that features of very different magnitude (I^2 vs 1) stay well conditioned.
            let scales = (0..<width).map { i in max(matrix[i * stride + i].squareRoot(), 1e-300) }
            for i in 0..<width {
                for j in 0..<width { matrix[i * stride + j] /= scales[i] * scales[j] }
                matrix[i * stride + width] /= scales[i]
            }
            for column in 0..<width {
                let pivot = (column..<width).max {
                    abs(matrix[$0 * stride + column]) < abs(matrix[$1 * stride + column])
                }!
                guard abs(matrix[pivot * stride + column]) > 1e-12 else {
                    throw EdgePlanError.invalidInput(
                        "observations do not cover enough range to fit coefficient \(column)"
                    )
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
        var scratch = values
        return median(inPlace: &scratch)
    }

    /// The median of `values`, which it reorders.
    static func median(inPlace values: inout [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let mid = values.count / 2
        let upper = select(&values, mid)
        guard values.count % 2 == 0 else { return upper }
        // The lower middle is the largest value left of the upper one after selection.
        let lower = values[..<mid].max()!
        return (lower + upper) / 2
    }

    /// Rearranges `values` so that index `k` holds the k-th smallest and returns it (Hoare's selection).
    static func select(_ values: inout [Double], _ k: Int) -> Double {
        values.withUnsafeMutableBufferPointer { v in
            var low = 0
            var high = v.count - 1
            while low < high {
                let pivot = v[(low + high) / 2]
                var i = low
                var j = high
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
