import Foundation

/// A robot must never learn its own evidence twice: once from its own store, and again as the fleet's. So a version
/// comes with one view per robot that contributed to it: each accuracy and length group the robot is in, pooled
/// again from the other robots only (bounded among themselves), and the groups that only it made. The robot learns
/// the version with those groups replaced, and the others dropped. Roles that report the same robot id are one
/// robot here: a robot given a second role, or its store made anew, still never hears itself.
///
/// Pooling the others again, rather than subtracting the robot's share on the robot, keeps the view exact: the
/// influence bound is judged among the others, and a mixture of length distributions cannot be taken apart again
/// from its twenty quantiles. And the robot never reads another robot's share.
extension FleetPooling {
    /// Per robot (its role), its view of the version: `accuracy` and `lengths` hold the groups it contributed to,
    /// pooled from the others; `onlyOwn` the keys of the groups no other robot contributed to.
    /// `robotIDs` maps roles to the robot id each reported, so that roles of one robot are left out together.
    public static func views(
        tallies: [Tally],
        summaries: [LengthSummary],
        options: Options = Options(),
        excluded: Set<String> = [],
        robotIDs: [String: String] = [:]
    ) -> [String: JSONValue] {
        var accuracy: [String: [JSONValue]] = [:]
        var lengths: [String: [JSONValue]] = [:]
        var onlyAccuracy: [String: [JSONValue]] = [:]
        var onlyLengths: [String: [JSONValue]] = [:]
        let accuracyGroups = accuracyGroups(tallies, options: options, excluded: excluded)
        // Per role, the robot id's index (roles without one are their own robot): members are compared by it.
        var robotIndex: [String: Int] = [:]
        func robotOf(_ role: String) -> Int {
            let name = robotIDs[role].map { "id:\($0)" } ?? "role:\(role)"
            if let index = robotIndex[name] { return index }
            robotIndex[name] = robotIndex.count
            return robotIndex.count - 1
        }
        for key in accuracyGroups.keys.sorted() {
            let robots = accuracyGroups[key]!.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            let owners = robots.map { robotOf($0.0) }
            for (position, (robot, _)) in robots.enumerated() {
                let others = robots.indices.filter { owners[$0] != owners[position] }.map { robots[$0] }
                if others.isEmpty {
                    onlyAccuracy[robot, default: []].append(groupKeyJSON(key))
                } else {
                    accuracy[robot, default: []].append(json(poolAccuracy(key, others, options: options)))
                }
            }
        }
        let lengthGroups = lengthGroups(summaries, excluded: excluded)
        for key in lengthGroups.keys.sorted() {
            let group = LengthGroup(key, lengthGroups[key]!, options: options)
            let members = group.members
            let owners = members.map { robotOf($0.robot) }
            for (position, member) in members.enumerated() {
                let leaving = Set(members.indices.filter { owners[$0] == owners[position] })
                if let pooled = poolLengths(group, options: options, leaving: leaving) {
                    lengths[member.robot, default: []].append(json(pooled))
                } else {
                    onlyLengths[member.robot, default: []].append(groupKeyJSON(key))
                }
            }
        }
        let robots = Set(accuracy.keys).union(lengths.keys).union(onlyAccuracy.keys).union(onlyLengths.keys)
        return Dictionary(
            uniqueKeysWithValues: robots.map { robot in
                (
                    robot,
                    JSONValue.fields([
                        "accuracy": .array(accuracy[robot] ?? []), "lengths": .array(lengths[robot] ?? []),
                        "onlyOwn": .fields([
                            "accuracy": .array(onlyAccuracy[robot] ?? []), "lengths": .array(onlyLengths[robot] ?? []),
                        ]),
                    ])
                )
            }
        )
    }

    static func groupKeyJSON(_ key: GroupKey) -> JSONValue {
        .fields([
            "task": .string(key.task), "model": .string(key.model), "quantization": .string(key.quantization),
            "mode": .string(key.mode), "budgetTokens": key.budget < 0 ? .null : .int(key.budget),
            "capped": .bool(key.capped), "parallel": .int(key.parallel),
        ])
    }

    /// A group's identity in a version (lengths are per sample: no parallel factor).
    static func groupID(_ item: JSONValue, lengths: Bool) -> String {
        [
            item["task"]?.stringValue ?? "", item["model"]?.stringValue ?? "", item["quantization"]?.stringValue ?? "",
            item["mode"]?.stringValue ?? "", item["budgetTokens"]?.intValue.map(String.init) ?? "-",
            (item["capped"]?.boolValue ?? false) ? "capped" : "",
            lengths ? "" : String(item["parallel"]?.intValue ?? 1),
        ].joined(separator: "|")
    }

    /// What a robot's view changed in a version.
    public struct OwnRows: Sendable, Equatable {
        /// Groups the robot contributed to, pooled from the others only.
        public var pooledWithout = 0
        /// Groups only the robot made, left out.
        public var dropped = 0
    }

    /// A version's body as a robot learns it: the groups it contributed to replaced by its view's (the others'
    /// pool), and those only it made dropped. A robot with no view (none of its rows are in the version) learns
    /// the body as it is.
    public static func withoutOwnRows(_ body: JSONValue, view: JSONValue?) -> (body: JSONValue, own: OwnRows) {
        guard let view, case let .object(fields) = body else { return (body, OwnRows()) }
        var own = OwnRows()
        var result: [(String, JSONValue)] = []
        for (name, value) in fields {
            guard name == "accuracy" || name == "lengths", case let .array(groups) = value else {
                result.append((name, value))
                continue
            }
            let isLengths = name == "lengths"
            var replacement: [String: JSONValue] = [:]
            for item in view[name]?.arrayValue ?? [] { replacement[groupID(item, lengths: isLengths)] = item }
            let only = Set((view["onlyOwn"]?[name]?.arrayValue ?? []).map { groupID($0, lengths: isLengths) })
            var kept: [JSONValue] = []
            for group in groups {
                let id = groupID(group, lengths: isLengths)
                if only.contains(id) {
                    own.dropped += 1
                } else if let others = replacement[id] {
                    kept.append(others)
                    own.pooledWithout += 1
                } else {
                    kept.append(group)
                }
            }
            result.append((name, .array(kept)))
        }
        return (.object(result), own)
    }
}
