import Foundation
import Synchronization

/// Plurality voting over `k` samples, from first principles.
///
/// Each question has its own single-sample correctness `c`, Beta distributed around the mean with a
/// concentration `κ` (small κ: questions are either known or not; large κ: every question alike). Each sample
/// abstains with probability `a` (it hit the cap without an answer), else answers correctly with probability
/// `c` or picks one of the `m − 1` wrong options uniformly. The answer with most votes wins, ties break at
/// random, and no answer at all counts as wrong.
///
/// Given `n` answering samples, the number correct is beta-binomial, so the accuracy is an exact finite sum:
/// `Σ_n Binom(n; k, 1 − a) Σ_t BetaBinom(t; n, α, β) W(t, n − t)`, with `W` the chance that `t` correct votes win
/// against `n − t` wrong votes spread over `m − 1` options. Consequences that follow without tuning: with no
/// abstention two samples never beat one (a split vote is a coin flip), and accuracy saturates at the share of
/// questions the model answers correctly more often than it picks any one wrong option.
public enum PluralityVote {
    /// Accuracy of the voted answer; `single` is the single-sample accuracy (abstentions counted wrong).
    public static func accuracy(
        single: Double,
        samples k: Int,
        abstention: Double,
        concentration: Double,
        options: Int
    ) -> Double {
        guard k > 1 else { return single }
        guard single > 0 else { return 0 }
        let a = min(max(abstention, 0), 0.999)
        let answering = 1 - a
        let c = min(single / answering, 0.9995)
        let alpha = c * concentration
        let beta = (1 - c) * concentration
        let table = winTable(samples: k, options: options)
        // Per-call factors of the beta-binomial pmf ratio: (α + t) and 1 / (β + j) for t, j below k.
        var rising = [Double](repeating: 0, count: k)
        var fallingInverse = [Double](repeating: 0, count: k)
        for i in 0..<k {
            rising[i] = alpha + Double(i)
            fallingInverse[i] = 1 / (beta + Double(i))
        }
        var total = 0.0
        // Binomial weight of n answering samples, built up from n = 0.
        var binomial = pow(a, Double(k))
        // Beta-binomial weight of 0 correct among n, built up from n = 0: ∏_{i<n} (β + i) / (α + β + i).
        var noneCorrect = 1.0
        for n in 0...k {
            if n > 0 {
                binomial *= Double(k - n + 1) / Double(n) * (a > 0 ? answering / a : 0)
                if a == 0 && n == k { binomial = 1 }
                noneCorrect *= (beta + Double(n - 1)) / (alpha + beta + Double(n - 1))
            }
            guard binomial > 1e-300, n > 0 else { continue }
            // Beta-binomial weights of t correct among n: start at t = 0, step by the pmf ratio
            // (n − t) / (t + 1) · (α + t) / (β + n − t − 1).
            var weight = noneCorrect
            var sum = 0.0
            let row = table.wins[n]
            let steps = table.steps[n]
            for t in 0...n {
                sum += weight * row[t]
                if t < n { weight *= steps[t] * rising[t] * fallingInverse[n - t - 1] }
            }
            total += binomial * sum
        }
        return min(max(total, 0), 1)
    }

    private struct Key: Hashable {
        var samples: Int
        var options: Int
    }

    /// `wins[n][t]`: the chance that `t` correct votes win among `n` answers, the other `n − t` spread uniformly
    /// over `options − 1` wrong options, ties broken at random; `steps[n][t] = (n − t) / (t + 1)`, the binomial part
    /// of the pmf ratio.
    struct Tables: Sendable {
        var wins: [[Double]]
        var steps: [[Double]]
    }

    private static let tables = Mutex<[Key: Tables]>([:])

    /// The tables for `k` samples and `options` answer options, computed once per pair.
    static func winTable(samples k: Int, options m: Int) -> Tables {
        let key = Key(samples: k, options: max(m, 2))
        if let cached = tables.withLock({ $0[key] }) { return cached }
        let table = Tables(
            wins: buildWinTable(samples: k, wrongOptions: max(m, 2) - 1),
            steps: (0...k).map { n in (0...n).map { t in Double(n - t) / Double(t + 1) } }
        )
        tables.withLock { $0[key] = table }
        return table
    }

    /// Exponential generating functions: with `A(x) = Σ_{j<t} x^j/j!` (a wrong option below t) and `B(x) = x^t/t!`
    /// (a wrong option tied at t), `W(t, r) = r!/w^r · [x^r] Σ_j C(w, j) B^j A^(w−j) / (1 + j)`.
    private static func buildWinTable(samples k: Int, wrongOptions w: Int) -> [[Double]] {
        var factorial = [1.0]
        for i in 1...max(k, 1) { factorial.append(factorial[i - 1] * Double(i)) }
        var choose = [[Double]](repeating: [Double](repeating: 0, count: w + 1), count: w + 1)
        for n in 0...w {
            choose[n][0] = 1
            if n > 0 { for j in 1...n { choose[n][j] = choose[n - 1][j - 1] + (j <= n - 1 ? choose[n - 1][j] : 0) } }
        }
        var table = (0...k).map { [Double](repeating: 0, count: $0 + 1) }
        for n in 0...k where n > 0 { table[n][n] = 1 }
        guard k >= 2 else { return table }
        for t in 1..<k {
            let degree = k - t
            let a = (0...degree).map { $0 < t ? 1 / factorial[$0] : 0 }
            // Powers of A truncated at the largest wrong count that can occur.
            var powers = [[Double](repeating: 0, count: degree + 1)]
            powers[0][0] = 1
            for p in 1...w { powers.append(multiply(powers[p - 1], a, degree: degree)) }
            let tiedTerm = 1 / factorial[t]
            for r in 1...degree {
                var coefficient = 0.0
                var tiedFactor = 1.0
                for j in 0...w {
                    let shift = r - t * j
                    if shift < 0 { break }
                    coefficient += choose[w][j] * tiedFactor * powers[w - j][shift] / Double(1 + j)
                    tiedFactor *= tiedTerm
                }
                table[t + r][t] = coefficient * factorial[r] / pow(Double(w), Double(r))
            }
        }
        return table
    }

    private static func multiply(_ x: [Double], _ y: [Double], degree: Int) -> [Double] {
        var out = [Double](repeating: 0, count: degree + 1)
        for i in 0...degree where x[i] != 0 {
            for j in 0...(degree - i) where y[j] != 0 { out[i + j] += x[i] * y[j] }
        }
        return out
    }
}
