/// Integrates sampled power over a time window.
public enum EnergyIntegrator {
    /// Joules between `start` and `end` from `(time s, power W)` samples in time order: trapezoids, with the
    /// power at the window's edges interpolated. Nil when the samples do not cover the window or have a
    /// gap longer than `maximumGap` seconds inside it.
    public static func joules(
        _ samples: [(time: Double, watts: Double)],
        from start: Double,
        to end: Double,
        maximumGap: Double = 1
    ) -> Double? {
        guard end > start, let first = samples.first, let last = samples.last, first.time <= start, last.time >= end
        else { return nil }
        var total = 0.0
        for (a, b) in zip(samples, samples.dropFirst()) where b.time > start && a.time < end {
            guard b.time - a.time <= maximumGap else { return nil }
            let span = b.time - a.time
            guard span > 0 else { continue }
            func power(at t: Double) -> Double { a.watts + (b.watts - a.watts) * (t - a.time) / span }
            let left = max(a.time, start)
            let right = min(b.time, end)
            total += (power(at: left) + power(at: right)) / 2 * (right - left)
        }
        return total
    }
}
