import Foundation
import Testing

@testable import EdgePlanCore

@Suite struct ProfileEncoderTests {
    @Test func everyBundledFileRoundTrips() throws {
        let profile = Fixtures.profile
        var files = [ProfileDecoder.File(path: "device.yaml", text: ProfileEncoder.device(profile.device))]
        for variant in profile.variants.values {
            files.append(
                .init(
                    path: "models/\(variant.id.model).\(variant.id.quantization.rawValue).yaml",
                    text: ProfileEncoder.variant(variant)
                )
            )
        }
        for table in profile.accuracy.values {
            files.append(.init(path: "accuracy/\(table.task).yaml", text: ProfileEncoder.accuracy(table)))
        }
        let decoded = try ProfileDecoder.decode(files)
        #expect(decoded.device == profile.device)
        #expect(decoded.variants == profile.variants)
        #expect(decoded.accuracy == profile.accuracy)
    }

    /// Measured parallel factors survive the file and are used as measured: exact at measured counts, joined in log k
    /// between them, the slope continuing past the last (H200 llama-server figures, `n = k`).
    @Test func measuredParallelFactorsRoundTripAndAreUsedAsMeasured() throws {
        var variant = try #require(Fixtures.profile.variants.values.first)
        variant.parallel = ParallelScaling(
            latencySlopePerSample: 0.369,
            powerGainPerDoubling: 0.0773,
            measuredLatencyFactors: [2: 2.31, 4: 2.98, 8: 3.58],
            source: "measured"
        )
        let decoded = try ProfileDecoder.decodeVariant(
            .init(path: "models/x.yaml", text: ProfileEncoder.variant(variant))
        )
        #expect(decoded.parallel == variant.parallel)
        let scaling = decoded.parallel
        #expect(scaling.latencyFactor(1) == 1 && scaling.latencyFactor(2) == 2.31 && scaling.latencyFactor(8) == 3.58)
        #expect(abs(scaling.latencyFactor(3) - (2.31 + (log2(3) - 1) * (2.98 - 2.31))) < 1e-12)
        #expect(abs(scaling.latencyFactor(16) - (3.58 + 0.369 * 8)) < 1e-12)
        // Without measurements the linear slope holds, as for the paper's profiles.
        let linear = ParallelScaling(latencySlopePerSample: 0.369, powerGainPerDoubling: 0, source: "slope")
        #expect(abs(linear.latencyFactor(2) - 1.369) < 1e-12)
        let duplicate = ProfileEncoder.variant(variant).replacingOccurrences(of: "samples: 4,", with: "samples: 2,")
        #expect(throws: EdgePlanError.self) {
            try ProfileDecoder.decodeVariant(.init(path: "models/x.yaml", text: duplicate))
        }
    }

    @Test func awkwardNumbersAndStringsSurvive() throws {
        var variant = try #require(Fixtures.profile.variants.values.first)
        variant.decodeLatency = DecodeLatencyModel(
            mSPerToken2: 1e-7,
            nSPerToken: 0.0123456789,
            source: "quote \" and \\ and\nnewline"
        )
        let text = ProfileEncoder.variant(variant)
        let decoded = try ProfileDecoder.decodeVariant(.init(path: "models/x.yaml", text: text))
        #expect(decoded.decodeLatency.mSPerToken2 == 1e-7)
        #expect(abs(decoded.decodeLatency.nSPerToken - 0.0123456789) < 1e-15)
        #expect(decoded.decodeLatency.source == "quote \" and \\ and\nnewline")
    }
}
