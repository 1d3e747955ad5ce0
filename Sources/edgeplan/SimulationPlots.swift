import EdgePlanCore
import Foundation

/// SVG plots of a simulation: accuracy against deadline, deadline hits and accuracy over time around drift,
/// learned accuracy converging to the truth, and each task class's Pareto front.
enum SimulationPlots {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    static func all(_ simulator: Simulator) throws -> [(String, String)] {
        var plots: [(String, String)] = []
        // Accuracy against deadline: requests binned by deadline (powers of two seconds).
        let deadlineSeries = simulator.runs.map { run in
            (
                run.spec.name,
                run.byDeadline.keys.sorted().compactMap { bin -> (Double, Double)? in
                    let window = run.byDeadline[bin]!
                    return window.requests > 0
                        ? (pow(2, Double(bin) + 0.5), Double(window.correct) / Double(window.requests)) : nil
                }
            )
        }
        plots.append(
            (
                "accuracy-vs-deadline.svg",
                LineChart(
                    title: "Realized accuracy against deadline",
                    xLabel: "deadline (s, log scale)",
                    yLabel: "realized accuracy (correct and on time)",
                    series: deadlineSeries,
                    logX: true,
                    yRange: 0...1,
                    // Bins are powers of two: a line joins neighbouring bins only, never across a range with no data.
                    maxGap: log10(2) * 1.5,
                    markPoints: true
                ).svg
            )
        )
        // Over time, with drift events marked.
        let markers = simulator.truth.drift.map {
            ($0.atS / 3600, "\($0.kind.rawValue) x\($0.factor.significantDigits(3))")
        }
        func overTime(_ value: (SimulationWindow) -> Double) -> [(String, [(Double, Double)])] {
            simulator.runs.map { run in
                (
                    run.spec.name,
                    run.windows.keys.sorted().compactMap { index -> (Double, Double)? in
                        let window = run.windows[index]!
                        return window.requests > 0
                            ? ((Double(index) + 0.5) * simulator.options.windowS / 3600, value(window)) : nil
                    }
                )
            }
        }
        plots.append(
            (
                "deadline-hits-over-time.svg",
                LineChart(
                    title: "Deadline-hit rate over time",
                    xLabel: "time (h)",
                    yLabel: "deadline-hit rate per window",
                    series: overTime { Double($0.onTime) / Double($0.requests) },
                    markers: markers,
                    yRange: 0...1
                ).svg
            )
        )
        plots.append(
            (
                "accuracy-over-time.svg",
                LineChart(
                    title: "Realized accuracy over time",
                    xLabel: "time (h)",
                    yLabel: "realized accuracy per window",
                    series: overTime { Double($0.correct) / Double($0.requests) },
                    markers: markers,
                    yRange: 0...1
                ).svg
            )
        )
        // Learned accuracy against the truth.
        for run in simulator.runs {
            for trace in run.traces where !trace.points.isEmpty {
                let points = trace.points.map { ($0.t / 3600, $0.accuracy) }
                let band = trace.points.map { ($0.t / 3600, $0.low, $0.high) }
                let end = (trace.points.last!.t) / 3600
                plots.append(
                    (
                        "learned-\(run.spec.name)-\(trace.taskClass)-\(trace.group.variant.model).svg"
                            .replacingOccurrences(of: "/", with: "-"),
                        LineChart(
                            title: "Learned accuracy, \(trace.taskClass): \(trace.group)",
                            xLabel: "time (h)",
                            yLabel: "single-sample accuracy",
                            series: [
                                ("learned, 80 % band", points), ("truth", [(0, trace.truth), (end, trace.truth)]),
                                ("table prior", [(0, trace.prior), (end, trace.prior)]),
                            ],
                            band: band,
                            yRange: 0...1
                        ).svg
                    )
                )
            }
        }
        // Pareto fronts of each class at its typical input.
        let planner = try Planner(profile: simulator.profile, policy: simulator.runs[0].spec.policy)
        for name in Set(simulator.runs.flatMap { $0.classes.keys }).sorted() {
            let limits = try planner.limits(PlanRequest(task: name, deadlineS: 3600))
            let front = try planner.front(task: name, inputTokens: limits.inputTokens)
            let deadline = planner.policy.task(name).defaultDeadlineS.map { $0 * (1 - planner.policy.safetyMargin) }
            plots.append(
                (
                    "front-\(name).svg",
                    FrontierRenderer.svg(front, latencyLimitS: deadline, percentile: planner.policy.latencyPercentile)
                )
            )
        }
        return plots
    }
}

/// A small SVG line chart: labelled axes with units, a legend, optional log x, vertical markers and a band.
struct LineChart {
    var title: String
    var xLabel: String
    var yLabel: String
    var series: [(String, [(Double, Double)])]
    var logX = false
    var markers: [(Double, String)] = []
    var band: [(Double, Double, Double)] = []
    var yRange: ClosedRange<Double> = 0...1
    /// Where neighbouring points are farther apart than this on the x axis (in its own scale, log10 for a log
    /// axis), the line breaks: no line is drawn across a range without data.
    var maxGap: Double? = nil
    /// Whether each data point gets a marker, so that a lone point or a short segment is seen.
    var markPoints = false

    var svg: String {
        let (width, height, left, right, top, bottom) = (760.0, 440.0, 70.0, 200.0, 40.0, 55.0)
        let plotW = width - left - right
        let plotH = height - top - bottom
        let xs = series.flatMap { $0.1.map(\.0) } + markers.map(\.0) + band.map(\.0)
        func tx(_ x: Double) -> Double { logX ? log10(max(x, 1e-9)) : x }
        // Linear axes start at zero when the data are positive; log axes at the smallest value.
        let minX = logX ? (xs.map(tx).min() ?? 0) : min(0, xs.min() ?? 0)
        let maxX = max(xs.map(tx).max() ?? 1, minX + 1e-9)
        func x(_ v: Double) -> Double { left + (tx(v) - minX) / (maxX - minX) * plotW }
        func y(_ v: Double) -> Double {
            top + plotH - (min(max(v, yRange.lowerBound), yRange.upperBound) - yRange.lowerBound)
                / (yRange.upperBound - yRange.lowerBound) * plotH
        }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        }
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(f(left))\" y=\"22\" font-size=\"15\" font-weight=\"bold\">\(escape(title))</text>\n"
        for step in 0...5 {
            let value = yRange.lowerBound + Double(step) / 5 * (yRange.upperBound - yRange.lowerBound)
            svg +=
                "<line x1=\"\(f(left))\" y1=\"\(f(y(value)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(value)))\" stroke=\"#eee\"/>\n"
            svg +=
                "<text x=\"\(f(left - 6))\" y=\"\(f(y(value) + 4))\" text-anchor=\"end\">\(Int((value * 100).rounded())) %</text>\n"
        }
        // Ticks at round steps (1, 2 or 5 times a power of ten) in the axis's own units.
        let span = maxX - minX
        let raw = span / 6
        let magnitude = pow(10, (log10(max(raw, 1e-12))).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var tick = (minX / step).rounded(.up) * step
        while tick <= maxX + step * 1e-9 {
            let label = logX ? pow(10, tick).significantDigits(2) : tick.significantDigits(4)
            let px = left + (tick - minX) / span * plotW
            svg +=
                "<line x1=\"\(f(px))\" y1=\"\(f(top + plotH))\" x2=\"\(f(px))\" y2=\"\(f(top + plotH + 5))\" stroke=\"#333\"/>\n"
            svg += "<text x=\"\(f(px))\" y=\"\(f(top + plotH + 19))\" text-anchor=\"middle\">\(label)</text>\n"
            tick += step
        }
        svg +=
            "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg +=
            "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg +=
            "<text transform=\"translate(18,\(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        if !band.isEmpty {
            let upper = band.map { "\(f(x($0.0))),\(f(y($0.2)))" }
            let lower = band.reversed().map { "\(f(x($0.0))),\(f(y($0.1)))" }
            svg +=
                "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(Self.colour(0))\" opacity=\"0.15\"/>\n"
        }
        for (value, label) in markers {
            svg +=
                "<line x1=\"\(f(x(value)))\" y1=\"\(f(top))\" x2=\"\(f(x(value)))\" y2=\"\(f(top + plotH))\" stroke=\"#555\" stroke-dasharray=\"5,4\"/>\n"
            svg += "<text x=\"\(f(x(value) + 4))\" y=\"\(f(top + 14))\" fill=\"#555\">\(escape(label))</text>\n"
        }
        for (index, (name, points)) in series.enumerated() where !points.isEmpty {
            let colour = Self.colour(index)
            let dash =
                name == "truth" ? " stroke-dasharray=\"8,4\"" : name == "table prior" ? " stroke-dasharray=\"2,3\"" : ""
            // Segments of points no farther apart than maxGap.
            var segments: [[(Double, Double)]] = []
            for point in points {
                if let last = segments.last?.last, let maxGap, tx(point.0) - tx(last.0) > maxGap {
                    segments.append([point])
                } else if segments.isEmpty {
                    segments.append([point])
                } else {
                    segments[segments.count - 1].append(point)
                }
            }
            for segment in segments where segment.count > 1 {
                let path = segment.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
                svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"\(dash)/>\n"
            }
            if markPoints {
                for point in points {
                    svg += "<circle cx=\"\(f(x(point.0)))\" cy=\"\(f(y(point.1)))\" r=\"3.5\" fill=\"\(colour)\"/>\n"
                }
            }
            let legendY = top + 16 + Double(index) * 20
            svg +=
                "<line x1=\"\(f(left + plotW + 14))\" y1=\"\(f(legendY - 4))\" x2=\"\(f(left + plotW + 38))\" y2=\"\(f(legendY - 4))\" stroke=\"\(colour)\" stroke-width=\"2\"\(dash)/>\n"
            svg += "<text x=\"\(f(left + plotW + 44))\" y=\"\(f(legendY))\">\(escape(name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    static func colour(_ index: Int) -> String { SimulationPlots.palette[index % SimulationPlots.palette.count] }
}
