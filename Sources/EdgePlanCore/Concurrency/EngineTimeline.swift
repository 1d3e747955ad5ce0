/// Sequences that share one engine: how long each run takes when others decode beside it.
///
/// An engine decodes every running sequence in one step; a step with `b` sequences takes `f(b)` times a lone
/// sequence's (``DecodeConcurrency``). A run therefore advances its tokens at a rate that changes whenever another run
/// starts or ends, and a run that needs more slots than are free waits, first in, first out, as llama-server queues.
/// ``EngineTimeline`` plays that forward from now: every run's remaining prefill, decode tokens and the step time of
/// a lone sequence at its context, to the time each one ends.
public struct EngineTimeline: Sendable {
    /// One run on the engine, as the timeline needs it.
    public struct Run: Sendable, Equatable {
        public var id: String
        /// Sequences it decodes at once (its k samples).
        public var sequences: Int
        /// Seconds of prefill (and the request's fixed cost) still ahead of it, alone on the engine.
        public var prefillS: Double
        /// Decode tokens each of its sequences still has to produce (the longest sample's).
        public var tokens: Double
        /// Seconds a decode step takes for one sequence alone at this run's context.
        public var stepS: Double
        /// Whether it already holds its slots (admitted, running); a waiting run takes slots when they free up.
        public var started: Bool
        /// Decode power of one sequence alone, and prefill power, in watts: its energy is its share of the engine's.
        public var decodePowerW: Double
        public var prefillPowerW: Double

        public init(
            id: String,
            sequences: Int,
            prefillS: Double,
            tokens: Double,
            stepS: Double,
            started: Bool,
            decodePowerW: Double = 0,
            prefillPowerW: Double = 0
        ) {
            self.id = id
            self.sequences = max(1, sequences)
            self.prefillS = max(0, prefillS)
            self.tokens = max(0, tokens)
            self.stepS = max(0, stepS)
            self.started = started
            self.decodePowerW = max(0, decodePowerW)
            self.prefillPowerW = max(0, prefillPowerW)
        }
    }

    /// Each run's predicted end (seconds from now) and what it ran beside: the most sequences decoding at once during
    /// its decode, and the time-weighted mean.
    public struct Outcome: Sendable, Equatable {
        public var endS: Double
        /// When it got its slots (0 for a run already started).
        public var startS: Double
        public var peakSequences: Int
        public var meanSequences: Double
        /// Its own energy: its prefill, and of each decode step the share its sequences make of those decoding.
        public var energyJ: Double
    }

    public let concurrency: DecodeConcurrency

    public init(concurrency: DecodeConcurrency) {
        self.concurrency = concurrency
    }

    /// Plays the runs forward. Started runs hold their slots; the others take slots in the order given once enough
    /// are free. Prefill runs alone at the engine's pace and adds its cost to every step that decodes beside it
    /// (``DecodeConcurrency/prefillInterference``); decode advances each run by one token a step.
    public func play(_ runs: [Run]) -> [String: Outcome] {
        var byID: [String: Outcome] = [:]
        for (run, outcome) in zip(runs, playInOrder(runs)) { byID[run.id] = outcome }
        return byID
    }

    /// ``play(_:)`` with each run's outcome at its position (nil only for a run that never ends, which a bounded
    /// number of passes rules out for any finite input).
    public func playInOrder(_ runs: [Run]) -> [Outcome?] {
        struct Live {
            var position: Int
            var run: Run
            var startS: Double
            var prefillLeftS: Double
            var tokensLeft: Double
            var peak = 0
            var weighted = 0.0
            var decodingS = 0.0
            var energyJ = 0.0
        }
        let slots = concurrency.slots ?? Int.max
        var live: [Live] = []
        var waiting: [Run] = []
        var used = 0
        var waitingPositions: [Int] = []
        for (position, run) in runs.enumerated() {
            if run.started {
                live.append(
                    Live(position: position, run: run, startS: 0, prefillLeftS: run.prefillS, tokensLeft: run.tokens)
                )
                used += run.sequences
            } else {
                waiting.append(run)
                waitingPositions.append(position)
            }
        }
        var outcomes = [Outcome?](repeating: nil, count: runs.count)
        var now = 0.0
        func admit() {
            while let next = waiting.first, used + next.sequences <= slots || (live.isEmpty && used == 0) {
                waiting.removeFirst()
                let position = waitingPositions.removeFirst()
                live.append(
                    Live(
                        position: position,
                        run: next,
                        startS: now,
                        prefillLeftS: next.prefillS,
                        tokensLeft: next.tokens
                    )
                )
                used += next.sequences
            }
        }
        admit()
        // Each pass advances to the next event: a prefill done, a run done. Runs only end, so passes are bounded.
        var guardPasses = 0
        while !live.isEmpty, guardPasses < 100_000 {
            guardPasses += 1
            var b = 0
            var anyPrefilling = false
            for item in live {
                if item.prefillLeftS > 0 { anyPrefilling = true } else { b += item.run.sequences }
            }
            // While a prompt is processed, decoding runs slow by the interference; prefill itself goes at its pace.
            let slowdown = anyPrefilling ? 1 + concurrency.prefillInterference : 1
            let factor = b > 0 ? concurrency.stepFactor(b).factor * slowdown : 1
            var step = Double.infinity
            for item in live {
                if item.prefillLeftS > 0 {
                    step = min(step, item.prefillLeftS)
                } else {
                    let perToken = item.run.stepS * factor
                    step = min(step, perToken > 0 ? item.tokensLeft * perToken : 0)
                }
            }
            if !step.isFinite { step = 0 }
            let power = b > 0 ? concurrency.powerFactor(b) : 1
            var finished = false
            for index in live.indices {
                if live[index].prefillLeftS > 0 {
                    live[index].prefillLeftS -= step
                    live[index].energyJ += live[index].run.prefillPowerW * step
                    if live[index].prefillLeftS < 1e-12 { live[index].prefillLeftS = 0 }
                } else {
                    let perToken = live[index].run.stepS * factor
                    live[index].energyJ +=
                        live[index].run.decodePowerW * power * step * Double(live[index].run.sequences) / Double(b)
                    live[index].tokensLeft -= perToken > 0 ? step / perToken : live[index].tokensLeft
                    live[index].peak = max(live[index].peak, b)
                    live[index].weighted += Double(b) * step
                    live[index].decodingS += step
                    if live[index].tokensLeft <= 1e-9 { finished = true }
                }
            }
            now += step
            guard finished else { continue }
            var remaining: [Live] = []
            remaining.reserveCapacity(live.count)
            for item in live {
                if item.prefillLeftS <= 0 && item.tokensLeft <= 1e-9 {
                    outcomes[item.position] = Outcome(
                        endS: now,
                        startS: item.startS,
                        peakSequences: max(item.peak, item.run.sequences),
                        meanSequences: item.decodingS > 0
                            ? item.weighted / item.decodingS : Double(item.run.sequences),
                        energyJ: item.energyJ
                    )
                    used -= item.run.sequences
                } else {
                    remaining.append(item)
                }
            }
            live = remaining
            admit()
        }
        return outcomes
    }
}
