import Foundation

/// What the device is set to, which a calibration depends on: the Jetson nvpmodel power mode and the GPU's
/// devfreq frequencies. A change of power mode invalidates the current calibration.
public struct DeviceContext: Sendable, Equatable {
    /// `pmode:0000` as `/var/lib/nvpmodel/status` writes it, nil where there is no nvpmodel.
    public var powerMode: String?
    public var gpuFrequencyHz: Double?
    public var gpuMaxFrequencyHz: Double?

    /// The JetPack 5 (`17000000.ga10b`) and JetPack 6 (`17000000.gpu`) GPU devfreq nodes.
    public static let gpuDevfreqNodes = ["/sys/class/devfreq/17000000.ga10b", "/sys/class/devfreq/17000000.gpu"]

    public static func read(_ root: SysfsRoot) -> DeviceContext {
        var context = DeviceContext()
        if let status = try? root.text("/var/lib/nvpmodel/status") {
            context.powerMode = status.split(whereSeparator: \.isNewline).first.map {
                String($0).trimmingCharacters(in: .whitespaces)
            }.flatMap { $0.hasPrefix("pmode:") ? $0 : nil }
        }
        for node in gpuDevfreqNodes where root.exists(node) {
            context.gpuFrequencyHz = try? root.number("\(node)/cur_freq")
            context.gpuMaxFrequencyHz = try? root.number("\(node)/max_freq")
            break
        }
        return context
    }

    /// A short label, e.g. `pmode:0000 gpu 1300/1300 MHz`.
    public var summary: String {
        var parts: [String] = [powerMode ?? "no nvpmodel"]
        if let current = gpuFrequencyHz {
            parts.append("gpu \(Int(current / 1e6))/\(gpuMaxFrequencyHz.map { String(Int($0 / 1e6)) } ?? "?") MHz")
        }
        return parts.joined(separator: " ")
    }
}
