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

    /// The sequences decoding over time while `runs` play out alone: (until, sequences) segments in time order, the
    /// engine idle after the last.
    public func decodingProfile(_ runs: [Run]) -> [(untilS: Double, sequences: Int)] {
        var engine = Engine(concurrency: concurrency, capacity: runs.count)
        engine.profile = []
        for run in runs { engine.add(run) }
        engine.advance(to: .infinity) { _, _, _ in }
        return engine.profile ?? []
    }

    /// Whether ``earliestEndS(_:besideProfile:)`` bounds a run's end with `sequences` on the engine in all: where a
    /// step never gets faster with more sequences and the slots never run out (a joining run could otherwise keep a
    /// waiting one from its slots, or speed the others up).
    public func boundsHold(sequences: Int) -> Bool {
        concurrency.neverFaster && sequences <= (concurrency.slots ?? Int.max)
    }

    /// The earliest a run could end beside runs whose decoding sequences over time are `profile` (from
    /// ``decodingProfile(_:)`` of them alone): a run joining them only slows them, so at every moment at least its own
    /// sequences and theirs decode, and no step is faster than the curve's floor there. Prefill interference only adds
    /// to it.
    public func earliestEndS(_ run: Run, besideProfile profile: [(untilS: Double, sequences: Int)]) -> Double {
        var now = run.prefillS
        var left = run.tokens
        for segment in profile where segment.untilS > now {
            let perToken = run.stepS * concurrency.floorStepFactor(run.sequences + segment.sequences)
            guard perToken > 0 else { return now }
            let span = segment.untilS - now
            if left * perToken <= span { return now + left * perToken }
            left -= span / perToken
            now = segment.untilS
        }
        return now + left * run.stepS * concurrency.floorStepFactor(run.sequences)
    }

    /// ``play(_:)`` with each run's outcome at its position (nil only for a run that never ends, which a bounded
    /// number of passes rules out for any finite input).
    public func playInOrder(_ runs: [Run]) -> [Outcome?] {
        var engine = Engine(concurrency: concurrency, capacity: runs.count)
        for run in runs { engine.add(run) }
        var outcomes = [Outcome?](repeating: nil, count: runs.count)
        engine.advance(to: .infinity) { position, _, outcome in outcomes[position] = outcome }
        return outcomes
    }

    /// An engine played forward in steps: runs join as they arrive (``add(_:cutAt:)``), and ``advance(to:_:)`` plays
    /// to a time, handing over each run that ended. Started runs hold their slots; the others take slots in the order
    /// added once enough are free. Prefill runs alone at the engine's pace and adds its cost to every step that decodes
    /// beside it (``DecodeConcurrency/prefillInterference``); decode advances each run by one token a step. A run with
    /// a cut time is stopped then, as a client stops a run at its deadline.
    public struct Engine: Sendable {
        struct Live: Sendable {
            var position: Int
            var run: Run
            var startS: Double
            var prefillLeftS: Double
            var tokensLeft: Double
            var cutAtS: Double
            var peak = 0
            var weighted = 0.0
            var decodingS = 0.0
            var energyJ = 0.0
        }

        public let concurrency: DecodeConcurrency
        private let slots: Int
        private var live: [Live] = []
        private var waiting: [Live] = []
        private var waitingHead = 0
        private var used = 0
        private var added = 0
        /// Seconds since the engine's start.
        public private(set) var now = 0.0
        /// When set, every pass appends its end and the sequences decoding during it.
        var profile: [(untilS: Double, sequences: Int)]?

        public init(concurrency: DecodeConcurrency, capacity: Int = 0) {
            self.concurrency = concurrency
            slots = concurrency.slots ?? Int.max
            live.reserveCapacity(capacity)
        }

        /// Runs on the engine or waiting for slots.
        public var isIdle: Bool { live.isEmpty && waitingHead == waiting.count }

        /// Sequences decoding or prefilling now.
        public var sequences: Int { used }

        /// Adds a run at ``now``; returns its position (the order of adding), which ``advance(to:_:)`` hands back.
        @discardableResult
        public mutating func add(_ run: Run, cutAt cutAtS: Double = .infinity) -> Int {
            let position = added
            added += 1
            let item = Live(
                position: position,
                run: run,
                startS: now,
                prefillLeftS: run.prefillS,
                tokensLeft: run.tokens,
                cutAtS: cutAtS
            )
            if run.started {
                live.append(item)
                used += run.sequences
            } else {
                waiting.append(item)
            }
            return position
        }

        /// Removes a run (preempted): it ends now, with what it did so far; nil when it already ended.
        public mutating func remove(position: Int) -> Outcome? {
            if let index = live.firstIndex(where: { $0.position == position }) {
                let item = live.remove(at: index)
                used -= item.run.sequences
                admit()
                return outcome(item)
            }
            if let index = waiting[waitingHead...].firstIndex(where: { $0.position == position }) {
                let item = waiting.remove(at: index)
                return outcome(item)
            }
            return nil
        }

        private func outcome(_ item: Live) -> Outcome {
            Outcome(
                endS: now,
                startS: item.startS,
                peakSequences: max(item.peak, item.run.sequences),
                meanSequences: item.decodingS > 0 ? item.weighted / item.decodingS : Double(item.run.sequences),
                energyJ: item.energyJ
            )
        }

        private mutating func admit() {
            while waitingHead < waiting.count,
                used + waiting[waitingHead].run.sequences <= slots || (live.isEmpty && used == 0)
            {
                var next = waiting[waitingHead]
                waitingHead += 1
                next.startS = now
                live.append(next)
                used += next.run.sequences
            }
            if waitingHead == waiting.count, waitingHead > 0 {
                waiting.removeAll(keepingCapacity: true)
                waitingHead = 0
            }
        }

        /// Plays forward to `time` (or until every run ended), calling `ended` with each run that ended, in order:
        /// its position, whether it was cut, and its outcome. Each pass advances to the next event (a prefill done, a
        /// run done, a cut); runs only end, so passes are bounded.
        public mutating func advance(to time: Double, _ ended: (Int, Bool, Outcome) -> Void) {
            admit()
            var guardPasses = 0
            while !live.isEmpty, now < time, guardPasses < 100_000 {
                guardPasses += 1
                // By index, not by element: copying an element retains its run's id, and this loop is the planner's
                // hot path beside a busy engine.
                var b = 0
                var anyPrefilling = false
                for index in live.indices {
                    if live[index].prefillLeftS > 0 {
                        anyPrefilling = true
                    } else {
                        b += live[index].run.sequences
                    }
                }
                // While a prompt is processed, decoding runs slow by the interference; prefill goes at its pace.
                let slowdown = anyPrefilling ? 1 + concurrency.prefillInterference : 1
                let factor = b > 0 ? concurrency.stepFactor(b).factor * slowdown : 1
                var step = time - now
                for index in live.indices {
                    step = min(step, max(0, live[index].cutAtS - now))
                    if live[index].prefillLeftS > 0 {
                        step = min(step, live[index].prefillLeftS)
                    } else {
                        let perToken = live[index].run.stepS * factor
                        step = min(step, perToken > 0 ? live[index].tokensLeft * perToken : 0)
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
                    if live[index].cutAtS <= now + step { finished = true }
                }
                now += step
                if profile != nil, step > 0 { profile!.append((now, b)) }
                guard finished else { continue }
                var index = 0
                while index < live.count {
                    let done = live[index].prefillLeftS <= 0 && live[index].tokensLeft <= 1e-9
                    if done || live[index].cutAtS <= now {
                        ended(live[index].position, !done, outcome(live[index]))
                        used -= live[index].run.sequences
                        live.remove(at: index)
                    } else {
                        index += 1
                    }
                }
                admit()
            }
            if live.isEmpty, now < time, time.isFinite { now = time }
        }
    }
}
