import Foundation

/// Fits decode latency per regime from per-token traces of an engine whose speed jumps between levels.
///
/// Each run is split into regimes by ``RegimeSegmenter`` (online, so the change delays are those the
/// watchdog would see). Segments whose median step times lie within `tolerance` of each other form one
/// regime. The attention term `m` of Eq. 2 is shared (a property of the model and device) and given;
/// each regime has its own per-token time `n` (the trimmed mean of
/// `step - m (I + t)`). Each segment of a regime is held out in turn and predicted from the others (a
/// regime seen in one segment only is split in halves). Accuracy is judged as the MAPE of the cumulative decode time
/// at every `checkpoint` tokens of each held-out segment, the quantity the planner predicts.
public struct RegimeFitter: Sendable {
    public struct Regime: Sendable {
        public var nSPerToken: Double
        public var segments: Int
        public var tokens: Int
        public var heldOutMAPE: Double
        public var heldOutCheckpoints: Int
        /// The single (regime-blind) fit's MAPE on the same held-out checkpoints.
        public var naiveMAPE: Double
    }

    public struct Result: Sendable {
        public var mSPerToken2: Double
        public var naive: DecodeLatencyModel
        public var regimes: [Regime]
        public var changes: [(run: Int, change: RegimeSegmenter.Change)]
        /// Checkpoint-weighted over all regimes.
        public var heldOutMAPE: Double
        public var naiveHeldOutMAPE: Double
    }

    public var segmenter = RegimeSegmenter()
    public var tolerance = 1.10
    public var minimumSegment = 64
    public var checkpoint = 64
    public var window = 16
    /// Share trimmed from each end of a regime's step times before averaging: the cumulative time the
    /// planner predicts is a sum, so the mean (not the median) is the right level, minus rare stalls.
    public var trim = 0.05

    public init() {}

    private struct Piece {
        var run: Int
        var start: Int
        var end: Int
        var median: Double
        var count: Int { end - start }
    }

    public func fit(_ runs: [TokenTimeSeries], mSPerToken2 m: Double) throws -> Result {
        var pieces: [Piece] = []
        var changes: [(run: Int, change: RegimeSegmenter.Change)] = []
        for (index, run) in runs.enumerated() {
            let (segments, found) = segmenter.segment(run.seconds)
            changes += found.map { (index, $0) }
            pieces += segments.filter { $0.count >= minimumSegment }.map {
                Piece(run: index, start: $0.start, end: $0.end, median: $0.median)
            }
        }
        guard !pieces.isEmpty else {
            throw EdgePlanError.invalidInput("no steady stretch of \(minimumSegment) tokens in the per-token traces")
        }
        // Regimes: sorted by level, a new one whenever a segment is more than `tolerance` above the regime's first.
        var clusters: [[Piece]] = []
        for piece in pieces.sorted(by: { $0.median < $1.median }) {
            if let first = clusters.last?.first, piece.median <= first.median * tolerance {
                clusters[clusters.count - 1].append(piece)
            } else {
                clusters.append([piece])
            }
        }
        // Cross-validation within each regime: every segment is held out once and predicted from the others;
        // a regime seen in one segment only is split in halves, each predicted from the other.
        var folds: [[(fit: [Piece], held: Piece)]] = []
        for cluster in clusters {
            let ordered = cluster.sorted { ($0.run, $0.start) < ($1.run, $1.start) }
            if ordered.count >= 2 {
                folds.append(
                    ordered.indices.map { i in
                        (ordered.enumerated().filter { $0.offset != i }.map(\.element), ordered[i])
                    }
                )
            } else {
                let only = ordered[0]
                let middle = only.start + only.count / 2
                let first = Piece(run: only.run, start: only.start, end: middle, median: only.median)
                let second = Piece(run: only.run, start: middle, end: only.end, median: only.median)
                folds.append([([first], second), ([second], first)])
            }
        }
        // The regime-blind single fit (n and m) over windows of every segment, for comparison. It sees the
        // held-out segments too, which only flatters it.
        var features: [[Double]] = []
        var targets: [Double] = []
        for piece in pieces {
            let run = runs[piece.run]
            let input = Double(run.inputTokens)
            for start in stride(from: piece.start, to: piece.end - window + 1, by: window) {
                let k = Double(window)
                let t0 = Double(start)
                features.append([k, k * input + (k * t0 + k * (k - 1) / 2)])
                targets.append(run.seconds[start..<(start + window)].reduce(0, +))
            }
        }
        let naiveFit = try RobustRegression.fit(features: features, targets: targets)
        let naive = DecodeLatencyModel(
            mSPerToken2: naiveFit.coefficients[1],
            nSPerToken: naiveFit.coefficients[0],
            source: "single robust fit over every regime"
        )

        func checkpoints(_ pieces: [Piece], _ predict: (Int, Int, Int) -> Double) -> [Double] {
            var errors: [Double] = []
            for piece in pieces {
                let run = runs[piece.run]
                var elapsed = 0.0
                var count = 0
                for step in piece.start..<piece.end {
                    elapsed += run.seconds[step]
                    count += 1
                    if count % checkpoint == 0 {
                        let predicted = predict(run.inputTokens, piece.start, count)
                        errors.append(abs(predicted - elapsed) / elapsed)
                    }
                }
            }
            return errors
        }
        // Decode time of `count` steps starting at step `start` after `input` prompt tokens.
        func seconds(n: Double, m: Double, input: Int, start: Int, count: Int) -> Double {
            let k = Double(count)
            let t0 = Double(start)
            return n * k + m * (k * Double(input) + k * t0 + k * (k - 1) / 2)
        }
        func perTokenN(_ pieces: [Piece]) -> Double {
            var residuals: [Double] = []
            for piece in pieces {
                let run = runs[piece.run]
                for step in piece.start..<piece.end {
                    residuals.append(run.seconds[step] - m * Double(run.inputTokens + step))
                }
            }
            return Self.trimmedMean(residuals, trim: trim)
        }
        var regimes: [Regime] = []
        var allErrors: [Double] = []
        var allNaive: [Double] = []
        for (cluster, regimeFolds) in zip(clusters, folds) {
            var errors: [Double] = []
            var naiveErrors: [Double] = []
            for fold in regimeFolds {
                let n = perTokenN(fold.fit)
                errors += checkpoints([fold.held]) { seconds(n: n, m: m, input: $0, start: $1, count: $2) }
                naiveErrors += checkpoints([fold.held]) {
                    seconds(n: naive.nSPerToken, m: naive.mSPerToken2, input: $0, start: $1, count: $2)
                }
            }
            allErrors += errors
            allNaive += naiveErrors
            regimes.append(
                Regime(
                    nSPerToken: perTokenN(cluster),
                    segments: cluster.count,
                    tokens: cluster.map(\.count).reduce(0, +),
                    heldOutMAPE: Self.mean(errors) * 100,
                    heldOutCheckpoints: errors.count,
                    naiveMAPE: Self.mean(naiveErrors) * 100
                )
            )
        }
        return Result(
            mSPerToken2: m,
            naive: naive,
            regimes: regimes,
            changes: changes,
            heldOutMAPE: Self.mean(allErrors) * 100,
            naiveHeldOutMAPE: Self.mean(allNaive) * 100
        )
    }

    /// The mean of the values between the `trim` and `1 - trim` quantiles.
    static func trimmedMean(_ values: [Double], trim: Double) -> Double {
        let sorted = values.sorted()
        let cut = Int(Double(sorted.count) * trim)
        let kept = sorted[cut..<max(cut + 1, sorted.count - cut)]
        return kept.reduce(0, +) / Double(kept.count)
    }

    static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
    }
}
