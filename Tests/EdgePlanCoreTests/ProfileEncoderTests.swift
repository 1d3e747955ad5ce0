import Testing
@testable import EdgePlanCore

@Suite struct ProfileEncoderTests {
    @Test func everyBundledFileRoundTrips() throws {
        let profile = Fixtures.profile
        var files = [ProfileDecoder.File(path: "device.yaml", text: ProfileEncoder.device(profile.device))]
        for variant in profile.variants.values {
            files.append(.init(path: "models/\(variant.id.model).\(variant.id.quantization.rawValue).yaml", text: ProfileEncoder.variant(variant)))
        }
        for table in profile.accuracy.values {
            files.append(.init(path: "accuracy/\(table.task).yaml", text: ProfileEncoder.accuracy(table)))
        }
        let decoded = try ProfileDecoder.decode(files)
        #expect(decoded.device == profile.device)
        #expect(decoded.variants == profile.variants)
        #expect(decoded.accuracy == profile.accuracy)
    }

    @Test func awkwardNumbersAndStringsSurvive() throws {
        var variant = try #require(Fixtures.profile.variants.values.first)
        variant.decodeLatency = DecodeLatencyModel(mSPerToken2: 1e-7, nSPerToken: 0.0123456789, source: "quote \" and \\ and\nnewline")
        let text = ProfileEncoder.variant(variant)
        let decoded = try ProfileDecoder.decodeVariant(.init(path: "models/x.yaml", text: text))
        #expect(decoded.decodeLatency.mSPerToken2 == 1e-7)
        #expect(abs(decoded.decodeLatency.nSPerToken - 0.0123456789) < 1e-15)
        #expect(decoded.decodeLatency.source == "quote \" and \\ and\nnewline")
    }
}
