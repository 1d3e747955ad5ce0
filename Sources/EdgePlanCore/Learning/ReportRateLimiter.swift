/// A token bucket per reporting peer: each may report `rate` times a second on average, in bursts of up to
/// `burst`, so one peer flooding `Report` cannot fill the queue that every peer's reports wait in.
public struct ReportRateLimiter: Sendable {
    public var rate: Double
    public var burst: Double
    private var buckets: [UInt32: (tokens: Double, at: Double)] = [:]

    public init(rate: Double, burst: Double? = nil) {
        self.rate = rate
        self.burst = burst ?? max(1, 2 * rate)
    }

    /// Takes one report's token for `peer` at time `now` (seconds), or returns false when it has none left.
    public mutating func admit(_ peer: UInt32, at now: Double) -> Bool {
        var bucket = buckets[peer] ?? (burst, now)
        bucket.tokens = min(burst, bucket.tokens + max(0, now - bucket.at) * rate)
        bucket.at = now
        let admitted = bucket.tokens >= 1
        if admitted { bucket.tokens -= 1 }
        buckets[peer] = bucket
        return admitted
    }
}
