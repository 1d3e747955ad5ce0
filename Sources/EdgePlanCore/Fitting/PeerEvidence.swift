import Foundation

/// Bounds what any one reporting peer can change in a latency refit.
///
/// When several peers reported runs for a variant, no peer supplies more than `maxShare` of the runs behind a
/// fit (its most recent runs are kept), so one peer cannot outvote the rest; and a candidate fit must not
/// predict any peer's runs markedly worse than the current profile does, so a fit that pleases one
/// peer at the others' expense is refused. A lone reporter is the whole evidence and is not capped.
public struct PeerEvidence: Sendable {
    /// The largest share of a fit's runs one peer may supply when several peers reported.
    public var maxShare = 0.5
    /// How much (relative) a candidate may raise one peer's latency MAPE over its runs before it is refused.
    public var maxWorsening = 0.1
    /// Runs a peer needs behind a fit before its disagreement counts.
    public var minimumRuns = 5

    public init() {}

    /// The runs with every peer's contribution capped, in their original order.
    public func capped(_ runs: ArraySlice<RunReport>) -> ArraySlice<RunReport> {
        var counts: [UInt32?: Int] = [:]
        for run in runs { counts[run.peer, default: 0] += 1 }
        guard counts.count > 1 else { return runs }
        let ratio = maxShare / (1 - maxShare)
        var allowed = counts.mapValues { count in max(1, Int((Double(runs.count - count) * ratio).rounded(.down))) }
        guard allowed.contains(where: { counts[$0.key]! > $0.value }) else { return runs }
        // Keep each peer's most recent runs: walk back from the newest.
        var kept: [RunReport] = []
        kept.reserveCapacity(runs.count)
        for run in runs.reversed() where allowed[run.peer]! > 0 {
            allowed[run.peer]! -= 1
            kept.append(run)
        }
        return kept.reversed()[...]
    }

    /// The peer that supplied the most runs (nil also where the runs carry no peer).
    public static func dominant(_ runs: ArraySlice<RunReport>) -> UInt32? {
        var counts: [UInt32: Int] = [:]
        for run in runs { if let peer = run.peer { counts[peer, default: 0] += 1 } }
        return counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
    }

    /// Why `candidate` must be refused because some peer's runs disagree with it, or nil.
    public func disagreement(
        current: ModelVariant,
        candidate: ModelVariant,
        device: DeviceProfile,
        runs: ArraySlice<RunReport>
    ) -> String? {
        var byPeer: [UInt32?: (current: Double, candidate: Double, count: Int)] = [:]
        let predictor = Predictor(device: device)
        for run in runs where run.outputTokens > 0 && run.latencyS > 0 {
            let now = predictor.latencyS(
                current,
                input: run.inputTokens,
                output: Double(run.outputTokens),
                parallel: run.decodingSequences
            )
            let next = predictor.latencyS(
                candidate,
                input: run.inputTokens,
                output: Double(run.outputTokens),
                parallel: run.decodingSequences
            )
            var entry = byPeer[run.peer] ?? (0, 0, 0)
            entry.current += abs(now - run.latencyS) / run.latencyS
            entry.candidate += abs(next - run.latencyS) / run.latencyS
            entry.count += 1
            byPeer[run.peer] = entry
        }
        guard byPeer.count > 1 else { return nil }
        for (peer, entry) in byPeer.sorted(by: { ($0.key ?? 0) < ($1.key ?? 0) }) where entry.count >= minimumRuns {
            let current = entry.current / Double(entry.count) * 100
            let candidate = entry.candidate / Double(entry.count) * 100
            if candidate > current * (1 + maxWorsening) + 1 {
                let who = peer.map { "peer \($0)" } ?? "runs of unknown peers"
                return
                    "\(who) disagrees: its runs' MAPE would rise from \(current.significantDigits(3)) % to \(candidate.significantDigits(3)) %"
            }
        }
        return nil
    }
}
