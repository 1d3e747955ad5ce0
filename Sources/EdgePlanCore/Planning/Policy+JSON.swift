/// The effective policy as JSON (camelCase, units in names), for `GetPolicy` and `edgeplan policy show`.
extension Policy {
    public var json: JSONValue {
        let explore: JSONValue
        switch self.explore {
        case .off: explore = .fields(["mode": .string("off")])
        case let .thompson(maxLoss, rate):
            explore = .fields([
                "mode": .string("thompson"), "maxLoss": .number(maxLoss), "rate": .number(rate),
                "expectedLossCap": .number(maxLoss * rate),
            ])
        }
        return .fields([
            "version": .string(version),
            "profileDirectory": profileDirectory.map(JSONValue.string) ?? .null,
            "latencyPercentile": .number(latencyPercentile), "safetyMargin": .number(safetyMargin),
            "planOn": .string(latencyBasis.rawValue), "engine": .string(engine.rawValue),
            "ledger": .bool(ledger),
            "parallelFactors": .array(parallelFactors.map(JSONValue.int)),
            "explore": explore,
            "learning": .fields([
                "rememberedPlans": .int(learning.rememberedPlans),
                "maxEvidencePerPeer": .int(learning.maxEvidencePerPeer),
                "minPlausibleSuccessRatio": .number(learning.minPlausibleSuccessRatio),
            ]),
            "fleet": fleet.map { fleet in
                .fields([
                    "host": .string(fleet.host), "port": .int(fleet.port), "database": .string(fleet.database),
                    "user": .string(fleet.user), "passwordFile": fleet.passwordFile.map(JSONValue.string) ?? .null,
                    "robotId": fleet.robotID.map(JSONValue.string) ?? .null,
                    "deviceClass": fleet.deviceClass.map(JSONValue.string) ?? .null, "tls": .string(fleet.tls),
                    "batchSize": .int(fleet.batchSize),
                ])
            } ?? .null,
            "reporting": .fields([
                "users": .array(reporting.users.map(JSONValue.string)),
                "groups": reporting.groups.map { .array($0.map(JSONValue.string)) } ?? .null,
                "maxReportsPerSecond": .number(reporting.maxReportsPerSecond),
            ]),
            "defaults": defaultTask.json,
            "tasks": .object(tasks.keys.sorted().map { ($0, tasks[$0]!.json) }),
        ])
    }
}

extension TaskPolicy {
    public var json: JSONValue {
        .fields([
            "like": like.map(JSONValue.string) ?? .null, "priorWeight": .number(priorWeight),
            "deadlineMs": defaultDeadlineS.map { .number($0 * 1000) } ?? .null,
            "energyBudgetJ": defaultEnergyBudgetJ.map(JSONValue.number) ?? .null,
            "inputTokens": defaultInputTokens.map(JSONValue.int) ?? .null,
            "allowedModels": allowedModels.map { .array($0.sorted().map(JSONValue.string)) } ?? .null,
            "allowedQuantizations": allowedQuantizations.map {
                .array($0.map(\.rawValue).sorted().map(JSONValue.string))
            } ?? .null,
            "allowedModes": allowedModes.map { .array($0.map(\.rawValue).sorted().map(JSONValue.string)) } ?? .null,
            "maxParallel": .int(maxParallel), "minParallel": .int(minParallel), "minAccuracy": .number(minAccuracy),
            "chanceMargin": chanceMargin.map(JSONValue.number) ?? .null, "objective": .string(objective.rawValue),
            "priority": .int(priority), "safetyMargin": safetyMargin.map(JSONValue.number) ?? .null,
        ])
    }
}
