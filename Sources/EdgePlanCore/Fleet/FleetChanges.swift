import Foundation

extension FleetPooling {
    /// What a version changed against the one before: latency ratios by more than 1 %, accuracy by more than a
    /// point, robots flagged or cleared.
    public static func changes(from previous: JSONValue?, to next: JSONValue) -> JSONValue {
        var changed: [String] = []
        func index(_ body: JSONValue?, _ key: String, _ id: (JSONValue) -> String) -> [String: JSONValue] {
            guard case let .array(items)? = body?[key] else { return [:] }
            return Dictionary(items.map { (id($0), $0) }, uniquingKeysWith: { first, _ in first })
        }
        let calibrationID: (JSONValue) -> String = {
            let mode = $0["powerMode"]?.stringValue ?? ""
            return
                "\($0["deviceClass"]?.stringValue ?? "")\(mode.isEmpty ? "" : " (\(mode))") \($0["model"]?.stringValue ?? "")/\($0["quantization"]?.stringValue ?? "")"
        }
        let old = index(previous?["body"] ?? previous, "calibrations", calibrationID)
        for (id, item) in index(next, "calibrations", calibrationID).sorted(by: { $0.key < $1.key }) {
            let ratio = item["latencyRatio"]?.doubleValue ?? 1
            let before = old[id]?["latencyRatio"]?.doubleValue
            if before == nil || abs(ratio / before! - 1) > 0.01 {
                changed.append(
                    "\(id): latency \(String(format: "%.3f", ratio))x predicted\(before.map { String(format: " (was %.3fx)", $0) } ?? " (new)")"
                )
            }
        }
        let accuracyID: (JSONValue) -> String = {
            "\($0["task"]?.stringValue ?? "") \($0["model"]?.stringValue ?? "")/\($0["quantization"]?.stringValue ?? "") \($0["mode"]?.stringValue ?? "") x\($0["parallel"]?.intValue ?? 1)"
        }
        let oldAccuracy = index(previous?["body"] ?? previous, "accuracy", accuracyID)
        for (id, item) in index(next, "accuracy", accuracyID).sorted(by: { $0.key < $1.key }) {
            let value = item["accuracy"]?.doubleValue ?? 0
            let before = oldAccuracy[id]?["accuracy"]?.doubleValue
            if before == nil || abs(value - before!) > 0.01 {
                changed.append(
                    "\(id): accuracy \(String(format: "%.1f", value * 100)) %\(before.map { String(format: " (was %.1f %%)", $0 * 100) } ?? " (new)")"
                )
            }
        }
        let lengthID: (JSONValue) -> String = {
            "\($0["task"]?.stringValue ?? "") \($0["model"]?.stringValue ?? "")/\($0["quantization"]?.stringValue ?? "") \($0["mode"]?.stringValue ?? "")\($0["budgetTokens"]?.intValue.map { " \($0) tokens" } ?? "")"
        }
        let median: (JSONValue?) -> Double? = { item in
            guard let values = item?["quantileTokens"]?.arrayValue?.compactMap(\.doubleValue), values.count >= 2
            else { return nil }
            return (values[values.count / 2 - 1] + values[values.count / 2]) / 2
        }
        let oldLengths = index(previous?["body"] ?? previous, "lengths", lengthID)
        for (id, item) in index(next, "lengths", lengthID).sorted(by: { $0.key < $1.key }) {
            guard let value = median(item) else { continue }
            let before = median(oldLengths[id])
            if before == nil || abs(value / max(before!, 1) - 1) > 0.05 {
                changed.append(
                    "\(id): median length \(Int(value)) tokens\(before.map { " (was \(Int($0)))" } ?? " (new)")"
                )
            }
        }
        let flaggedBefore = Set(
            ((previous?["body"] ?? previous)?["flagged"]?.arrayValue ?? []).compactMap(\.stringValue)
        )
        let flaggedNow = Set((next["flagged"]?.arrayValue ?? []).compactMap(\.stringValue))
        for robot in flaggedNow.subtracting(flaggedBefore).sorted() { changed.append("\(robot) flagged") }
        for robot in flaggedBefore.subtracting(flaggedNow).sorted() { changed.append("\(robot) agrees again") }
        return .fields(["changed": .array(changed.map(JSONValue.string))])
    }
}
