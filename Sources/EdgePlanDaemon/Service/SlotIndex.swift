/// Where each key's slot is in an array of slots that hold their own keys: an open-addressed table of slot
/// positions with linear probing, 4 bytes a bucket.
///
/// Keys must already be well-spread hashes (the plan memory's are seeded per process): a key's home bucket is its
/// low bits. A dictionary of the same keys took 12 bytes a bucket and hashed each key again.
struct SlotIndex {
    private static let empty: Int32 = -1
    private var buckets: [Int32] = []
    private var count = 0

    /// The position stored for `key`, reading each candidate's key through `keyAt`.
    func position(of key: UInt64, keyAt: (Int32) -> UInt64) -> Int32? {
        guard !buckets.isEmpty else { return nil }
        let mask = buckets.count - 1
        var bucket = Int(truncatingIfNeeded: key) & mask
        while buckets[bucket] != Self.empty {
            if keyAt(buckets[bucket]) == key { return buckets[bucket] }
            bucket = (bucket + 1) & mask
        }
        return nil
    }

    /// Stores `position` for `key`, which must not be present; grows to keep the table at most half full.
    mutating func insert(_ key: UInt64, at position: Int32, keyAt: (Int32) -> UInt64) {
        if (count + 1) * 2 > buckets.count {
            let old = buckets
            buckets = [Int32](repeating: Self.empty, count: max(16, buckets.count * 2))
            for stored in old where stored != Self.empty { place(keyAt(stored), stored) }
        }
        place(key, position)
        count += 1
    }

    private mutating func place(_ key: UInt64, _ position: Int32) {
        let mask = buckets.count - 1
        var bucket = Int(truncatingIfNeeded: key) & mask
        while buckets[bucket] != Self.empty { bucket = (bucket + 1) & mask }
        buckets[bucket] = position
    }

    /// Forgets `key`, shifting later entries of its probe run back so that no lookup stops early.
    mutating func remove(_ key: UInt64, keyAt: (Int32) -> UInt64) {
        guard !buckets.isEmpty else { return }
        let mask = buckets.count - 1
        var hole = Int(truncatingIfNeeded: key) & mask
        while buckets[hole] != Self.empty && keyAt(buckets[hole]) != key { hole = (hole + 1) & mask }
        guard buckets[hole] != Self.empty else { return }
        buckets[hole] = Self.empty
        count -= 1
        var next = (hole + 1) & mask
        while buckets[next] != Self.empty {
            let home = Int(truncatingIfNeeded: keyAt(buckets[next])) & mask
            // An entry may fill the hole when its home is not cyclically within (hole, next].
            let homeAfterHole = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !homeAfterHole {
                buckets[hole] = buckets[next]
                buckets[next] = Self.empty
                hole = next
            }
            next = (next + 1) & mask
        }
    }
}
