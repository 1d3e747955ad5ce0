import Foundation

/// Whether a reported run could have happened on the profiled device, judged before anything learns from it.
///
/// The bounds are asymmetric. A run faster than the profile predicts by more than `maxSpeedup`, or faster than the
/// memory bandwidth allows (every weight read once per token), is impossible. A slower run is physically possible:
/// contention from another process slowed decode 7.4 times on an H200 (`data/h200/closed-loop/loader-probe.txt`),
/// so only a run slower than `maxSlowdown` times the prediction is refused, as a report whose units or lengths are
/// wrong (4.2 s for no output token at all, say).
public struct Plausibility: Sendable, Equatable {
    /// Most times faster than predicted a run may be.
    public var maxSpeedup: Double
    /// Most times slower than predicted a run may be.
    public var maxSlowdown: Double
    /// Share of the bandwidth floor a run may still undercut (the floor assumes the datasheet's bandwidth).
    public var floorTolerance: Double

    public init(maxSpeedup: Double = 4, maxSlowdown: Double = 20, floorTolerance: Double = 0.8) {
        self.maxSpeedup = maxSpeedup
        self.maxSlowdown = maxSlowdown
        self.floorTolerance = floorTolerance
    }

    /// Why the run is impossible, or nil when it is plausible. `predictedS` is the profile's latency at the run's
    /// own lengths.
    public func problem(
        _ variant: ModelVariant,
        device: DeviceProfile,
        outputTokens: Int,
        latencyS: Double,
        predictedS: Double
    ) -> String? {
        guard latencyS > 0, latencyS.isFinite, predictedS > 0, predictedS.isFinite else {
            return "latency must be a positive number of seconds"
        }
        let floorS = Roofline.decodeFloorSPerToken(variant, device: device) * Double(outputTokens) * floorTolerance
        if latencyS < floorS {
            return
                "\(outputTokens) output tokens in \(Self.ms(latencyS)) is faster than \(device.name)'s memory bandwidth allows "
                + "(at least \(Self.ms(floorS)) to read \(variant.id)'s weights once per token)"
        }
        let ratio = latencyS / predictedS
        if ratio < 1 / maxSpeedup {
            return
                "\(Self.ms(latencyS)) for \(outputTokens) output tokens is \((1 / ratio).significantDigits(3)) times faster than the profile's "
                + "\(Self.ms(predictedS)) (at most \(maxSpeedup.significantDigits(3)) times is plausible)"
        }
        if ratio > maxSlowdown {
            return
                "\(Self.ms(latencyS)) for \(outputTokens) output tokens is \(ratio.significantDigits(3)) times the profile's "
                + "\(Self.ms(predictedS)) (at most \(maxSlowdown.significantDigits(3)) times is plausible): the lengths or the latency are wrong"
        }
        return nil
    }

    /// Why a reported start time (Unix seconds) cannot be the run's, or nil. A run starts after its plan was made
    /// (`plannedAt`, when known), ends before its report arrives (`now`), and started within `maxAgeS`. `slackS`
    /// covers whole-second plan times and clock granularity.
    public static func startProblem(
        startedAt: Double,
        latencyS: Double,
        now: Double,
        plannedAt: Double?,
        maxAgeS: Double = 86_400,
        slackS: Double = 2
    ) -> String? {
        guard startedAt.isFinite else { return "startedAt must be a finite Unix time in seconds" }
        if startedAt + latencyS > now + slackS {
            return
                "startedAt \(startedAt.significantDigits(13)) puts the run's end \((startedAt + latencyS - now).significantDigits(4)) s after the report arrived"
        }
        if startedAt < now - maxAgeS {
            return
                "startedAt \(startedAt.significantDigits(13)) is \((now - startedAt).significantDigits(4)) s before the report arrived (at most \(maxAgeS.significantDigits(6)) s)"
        }
        if let plannedAt, startedAt < plannedAt - slackS {
            return
                "startedAt \(startedAt.significantDigits(13)) is \((plannedAt - startedAt).significantDigits(4)) s before its plan was made"
        }
        return nil
    }

    private static func ms(_ seconds: Double) -> String { "\((seconds * 1000).significantDigits(4)) ms" }
}
