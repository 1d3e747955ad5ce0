import EdgePlanCore
import Foundation

/// Renders a Pareto front as a table, CSV or an SVG chart (accuracy against latency, energy as colour).
enum FrontierRenderer {
    static func label(_ point: EvaluatedConfiguration) -> String {
        let c = point.configuration
        return
            "\(c.variant.model) \(c.variant.quantization.rawValue) \(c.mode.rawValue)\(c.budgetTokens.map { " \($0)" } ?? "") x\(c.parallel)"
    }

    static func table(_ front: ParetoFront, latencyLimitS: Double?) -> String {
        var lines = [
            "\(front.points.count) Pareto-optimal configurations for \(front.task) at \(front.inputTokens) input tokens",
            "configuration".padded(45)
                + "accuracy  80 % interval  source        latency s  p-latency s   energy J p-energy J"
                + (latencyLimitS == nil ? "" : " on time"),
        ]
        for point in front.points {
            let onTime = latencyLimitS.map { point.latencyPercentileS <= $0 ? "yes" : "no" } ?? ""
            let interval = String(format: "%.1f–%.1f%%", point.estimate.low * 100, point.estimate.high * 100)
            lines.append(
                label(point).padded(45) + String(format: "%7.1f%%  ", point.accuracy * 100) + interval.padded(14)
                    + point.accuracySource.rawValue.padded(12)
                    + String(
                        format: "%10.2f %12.2f %10.1f %10.1f ",
                        point.mean.latencyS,
                        point.latencyPercentileS,
                        point.energyJ,
                        point.energyPercentileJ
                    ) + onTime
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func csv(_ front: ParetoFront) -> String {
        var lines = [
            "model,quantization,mode,token_budget,parallel,accuracy,accuracy_low,accuracy_high,accuracy_source,latency_ms,latency_percentile_ms,energy_j,energy_percentile_j,cost_usd_per_mtok,memory_gib"
        ]
        for p in front.points {
            let c = p.configuration
            lines.append(
                [
                    c.variant.model, c.variant.quantization.rawValue, c.mode.rawValue,
                    c.budgetTokens.map(String.init) ?? "", String(c.parallel),
                    String(format: "%.4f", p.accuracy), String(format: "%.4f", p.estimate.low),
                    String(format: "%.4f", p.estimate.high),
                    p.accuracySource.rawValue, String(format: "%.1f", p.mean.latencyS * 1000),
                    String(format: "%.1f", p.latencyPercentileS * 1000), String(format: "%.2f", p.energyJ),
                    String(format: "%.2f", p.energyPercentileJ),
                    String(format: "%.5f", p.mean.costUSDPerMTok), String(format: "%.2f", p.mean.memoryGiB),
                ].joined(separator: ",")
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func svg(_ front: ParetoFront, latencyLimitS: Double?, percentile: Double) -> String {
        let width = 900.0
        let height = 560.0
        let left = 80.0
        let right = 190.0
        let top = 50.0
        let bottom = 70.0
        let plotW = width - left - right
        let plotH = height - top - bottom
        let latencies = front.points.map(\.latencyPercentileS)
        let minL = max((latencies.min() ?? 0.1) / 1.5, 1e-3)
        let maxL = max((latencies.max() ?? 1) * 1.5, minL * 10)
        let logMin = log10(minL)
        let logMax = log10(maxL)
        let maxAcc = min(1, ((front.points.map(\.accuracy).max() ?? 1) * 1.1 * 10).rounded(.up) / 10)
        let energies = front.points.map(\.energyJ)
        let minE = log10(max(energies.min() ?? 1, 1e-3))
        let maxE = log10(max(energies.max() ?? 10, 1e-3))
        func x(_ seconds: Double) -> Double { left + (log10(seconds) - logMin) / (logMax - logMin) * plotW }
        func y(_ accuracy: Double) -> Double { top + plotH - accuracy / maxAcc * plotH }
        func colour(_ energy: Double) -> String {
            let t = maxE > minE ? (log10(max(energy, 1e-3)) - minE) / (maxE - minE) : 0.5
            // Blue (frugal) to red (hungry).
            let r = Int(40 + 200 * t)
            let g = Int(90 + 60 * (1 - abs(t - 0.5) * 2))
            let b = Int(220 - 190 * t)
            return "rgb(\(r),\(g),\(b))"
        }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="16" font-weight="bold">\(escape(front.task)): Pareto front at \(front.inputTokens) input tokens</text>
            <rect x="\(left)" y="\(top)" width="\(plotW)" height="\(plotH)" fill="none" stroke="#444"/>

            """
        var decade = floor(logMin)
        while decade <= ceil(logMax) {
            for multiple in [1.0, 2.0, 5.0] {
                let value = pow(10, decade) * multiple
                guard value >= minL, value <= maxL else { continue }
                let px = x(value)
                svg += "<line x1=\"\(f(px))\" y1=\"\(top)\" x2=\"\(f(px))\" y2=\"\(top + plotH)\" stroke=\"#eee\"/>\n"
                svg +=
                    "<text x=\"\(f(px))\" y=\"\(top + plotH + 18)\" text-anchor=\"middle\">\(value >= 1 ? String(format: "%g", value) : String(format: "%.2g", value))</text>\n"
            }
            decade += 1
        }
        let gridPercent = maxAcc <= 0.3 ? 5 : 10
        for percent in stride(from: 0, through: Int((maxAcc * 100).rounded()), by: gridPercent) {
            let accuracy = Double(percent) / 100
            svg +=
                "<line x1=\"\(left)\" y1=\"\(f(y(accuracy)))\" x2=\"\(left + plotW)\" y2=\"\(f(y(accuracy)))\" stroke=\"#eee\"/>\n"
            svg += "<text x=\"\(left - 8)\" y=\"\(f(y(accuracy) + 4))\" text-anchor=\"end\">\(percent)%</text>\n"
        }
        svg +=
            "<text x=\"\(left + plotW / 2)\" y=\"\(height - 25)\" text-anchor=\"middle\">latency at p\(Int(percentile * 100)) (s, log scale)</text>\n"
        svg +=
            "<text transform=\"translate(22,\(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\">predicted accuracy</text>\n"
        if let latencyLimitS, latencyLimitS >= minL, latencyLimitS <= maxL {
            svg +=
                "<line x1=\"\(f(x(latencyLimitS)))\" y1=\"\(top)\" x2=\"\(f(x(latencyLimitS)))\" y2=\"\(top + plotH)\" stroke=\"#c00\" stroke-dasharray=\"6,4\"/>\n"
            svg +=
                "<text x=\"\(f(x(latencyLimitS) + 4))\" y=\"\(top + 14)\" fill=\"#c00\">deadline less margin: \(String(format: "%.3g", latencyLimitS)) s</text>\n"
        }
        for point in front.points.sorted(by: { $0.latencyPercentileS < $1.latencyPercentileS }) {
            let allowed = latencyLimitS.map { point.latencyPercentileS <= $0 } ?? true
            let fill = allowed ? colour(point.energyJ) : "white"
            svg +=
                "<circle cx=\"\(f(x(point.latencyPercentileS)))\" cy=\"\(f(y(point.accuracy)))\" r=\"5\" fill=\"\(fill)\" stroke=\"\(colour(point.energyJ))\" stroke-width=\"2\"><title>\(escape(label(point))): \(String(format: "%.1f%%, %.2f s, %.1f J", point.accuracy * 100, point.latencyPercentileS, point.energyJ))</title></circle>\n"
        }
        // Legend: energy colour scale and the meaning of hollow points.
        let legendX = left + plotW + 30
        svg += "<text x=\"\(legendX)\" y=\"\(top + 10)\" font-weight=\"bold\">energy (J)</text>\n"
        for step in 0...4 {
            let t = Double(step) / 4
            let energy = pow(10, minE + t * (maxE - minE))
            svg +=
                "<circle cx=\"\(legendX + 8)\" cy=\"\(top + 30 + Double(step) * 22)\" r=\"6\" fill=\"\(colour(energy))\"/>"
            svg +=
                "<text x=\"\(legendX + 22)\" y=\"\(top + 34 + Double(step) * 22)\">\(energy >= 100 ? String(format: "%.0f", energy) : String(format: "%.3g", energy))</text>\n"
        }
        if latencyLimitS != nil {
            svg +=
                "<circle cx=\"\(legendX + 8)\" cy=\"\(top + 160)\" r=\"5\" fill=\"white\" stroke=\"#888\" stroke-width=\"2\"/><text x=\"\(legendX + 22)\" y=\"\(top + 164)\">misses deadline</text>\n"
            svg +=
                "<circle cx=\"\(legendX + 8)\" cy=\"\(top + 182)\" r=\"5\" fill=\"#888\"/><text x=\"\(legendX + 22)\" y=\"\(top + 186)\">allowed</text>\n"
        }
        return svg + "</svg>\n"
    }

    private static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
