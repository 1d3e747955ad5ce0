import Foundation
import Testing

@testable import EdgePlanCore

/// The Beta quantile takes Newton steps inside a bracket; it must land where 60 halvings of [0, 1] land.
struct BetaQuantileTests {
    static func bisected(_ distribution: BetaDistribution, _ p: Double) -> Double {
        var low = 0.0
        var high = 1.0
        for _ in 0..<60 {
            let mid = (low + high) / 2
            if distribution.cdf(mid) < p { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    @Test func quantilesMatchBisection() {
        var random = SeededRandom(state: 17)
        var worst = 0.0
        for _ in 0..<3_000 {
            let distribution = BetaDistribution(
                alpha: Foundation.pow(10, random.next() * 6 - 3),
                beta: Foundation.pow(10, random.next() * 6 - 3)
            )
            for p in [1e-6, 0.05, 0.1, 0.5, 0.9, 0.95, random.next()] {
                let error = abs(distribution.quantile(p) - Self.bisected(distribution, p))
                worst = max(worst, error)
                #expect(error < 1e-12, "Beta(\(distribution.alpha), \(distribution.beta)) at \(p)")
            }
        }
        #expect(worst < 1e-12)
        #expect(BetaDistribution(alpha: 2, beta: 2).quantile(0.5) == 0.5)
    }
}
