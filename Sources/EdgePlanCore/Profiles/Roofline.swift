/// Physical lower bounds from parameters, bytes and device limits, and profiles derived from them alone.
public enum Roofline {
    /// Decode must at least stream every weight once per token.
    public static func decodeFloorSPerToken(_ variant: ModelVariant, device: DeviceProfile) -> Double {
        variant.weightBytes / (device.memoryBandwidthGBps * 1e9)
    }

    /// Prefill must at least do `2 * parameters * tokens` operations at peak throughput.
    public static func prefillFloorS(_ variant: ModelVariant, device: DeviceProfile, input: Int) -> Double {
        let peak = variant.id.quantization.isSixteenBitOrWider ? device.peakFP16TFLOPS : device.peakINT8TOPS
        return 2 * variant.parametersBillion * 1e9 * Double(input) / (peak * 1e12)
    }

    /// Fraction of the bandwidth bound the measured Orin decode reaches (0.72–0.78 for the three DSR1 models).
    public static let defaultDecodeEfficiency = 0.75
    /// Fraction of peak compute the measured Orin prefill reaches at 4k tokens (about 0.1–0.2).
    public static let defaultPrefillEfficiency = 0.15

    /// A usable profile for a variant nobody measured, built from the roofline and conservative efficiencies.
    public static func derive(
        model: String,
        quantization: Quantization,
        family: ModelFamily,
        parametersBillion: Double,
        bytesPerWeight: Double,
        kvCacheBytesPerToken: Double,
        contextTokens: Int,
        device: DeviceProfile,
        like template: ModelVariant
    ) -> ModelVariant {
        var variant = template
        variant.id = VariantID(model: model, quantization: quantization)
        variant.family = family
        variant.calibration = .roofline
        variant.engineModel = model
        variant.parametersBillion = parametersBillion
        variant.bytesPerWeight = bytesPerWeight
        variant.kvCacheBytesPerToken = kvCacheBytesPerToken
        variant.contextTokens = contextTokens
        let n = decodeFloorSPerToken(variant, device: device) / defaultDecodeEfficiency
        // Attention reads the KV cache once per step: m is KV bytes per token over bandwidth, at the same efficiency.
        let m = kvCacheBytesPerToken / (device.memoryBandwidthGBps * 1e9) / defaultDecodeEfficiency
        variant.decodeLatency = DecodeLatencyModel(
            mSPerToken2: m,
            nSPerToken: n,
            source: "roofline: weight bytes / bandwidth at \(defaultDecodeEfficiency) efficiency"
        )
        let perToken = prefillFloorS(variant, device: device, input: 1) / defaultPrefillEfficiency
        variant.prefillLatency = PrefillLatencyModel(
            aSPerToken2: 0,
            bSPerToken: perToken,
            cS: n,
            source:
                "roofline: 2 x parameters FLOPs per token at \(defaultPrefillEfficiency) of peak, plus one weight pass"
        )
        variant.prefillLatencyReference = nil
        variant.prefillPowerSource = "borrowed from \(template.id) (no measurement): " + template.prefillPowerSource
        variant.decodePowerSource = "borrowed from \(template.id) (no measurement): " + template.decodePowerSource
        return variant
    }
}
