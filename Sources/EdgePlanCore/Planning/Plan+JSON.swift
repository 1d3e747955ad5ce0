import Foundation

/// The JSON shapes shared by the CLI and the daemon (camelCase, units in names).
extension Plan {
    public var json: JSONValue {
        .fields([
            "task": .string(task), "requestId": requestID.json,
            "model": .string(configuration.variant.model),
            "quantization": .string(configuration.variant.quantization.rawValue),
            "mode": .string(configuration.mode.rawValue),
            "tokenBudget": configuration.budgetTokens.json,
            "capped": .bool(configuration.capped),
            "parallel": .int(configuration.parallel),
            "inputTokens": .int(inputTokens),
            "deadlineMs": .number(deadlineS * 1000),
            "energyBudgetJ": energyBudgetJ.json,
            "predicted": .fields([
                "latencyMs": .number(latencyS * 1000),
                "latencyPercentileMs": .number(latencyPercentileS * 1000),
                "percentile": .number(percentile),
                "energyJ": .number(energyJ),
                "energyPercentileJ": .number(energyPercentileJ),
                "accuracy": .number(accuracy),
                "accuracyLow": .number(estimate.low),
                "accuracyHigh": .number(estimate.high),
                "accuracySource": .string(accuracySource.rawValue),
                "observations": .int(estimate.observations),
                "costUsdPerMTok": .number(costUSDPerMTok),
                "memoryGiB": .number(memoryGiB),
                "missProbability": .number(missProbability),
                "meanOutputTokens": .number(meanOutputTokens),
                "percentileOutputTokens": .number(percentileOutputTokens),
                "capProbability": .number(outputLength.capProbability),
                "lengthSource": .string(outputLength.source.rawValue),
            ]),
            "objective": .string(objective.rawValue),
            "explored": .bool(explored),
            "request": engineRequest.json,
            "profileVersion": .string(profileVersion),
            "policyVersion": .string(policyVersion),
        ])
    }
}

extension EngineRequest {
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("model", .string(model)),
            ("messages", .array(messages.map { .object([("role", .string($0.role)), ("content", .string($0.content))]) })),
            ("max_tokens", .int(maxTokens)),
            ("n", .int(n)),
            ("temperature", .number(temperature)),
            ("top_p", .number(topP)),
        ]
        if continueFinalMessage {
            pairs.append(("continue_final_message", .bool(true)))
            pairs.append(("add_generation_prompt", .bool(false)))
        }
        return .object([("body", .object(pairs)), ("aggregation", .string(aggregation))])
    }
}

extension EvaluatedConfiguration {
    public var json: JSONValue {
        .fields([
            "model": .string(configuration.variant.model),
            "quantization": .string(configuration.variant.quantization.rawValue),
            "mode": .string(configuration.mode.rawValue),
            "tokenBudget": configuration.budgetTokens.json,
            "capped": .bool(configuration.capped),
            "parallel": .int(configuration.parallel),
            "accuracy": .number(accuracy),
            "accuracyLow": .number(estimate.low),
            "accuracyHigh": .number(estimate.high),
            "accuracySource": .string(accuracySource.rawValue),
            "observations": .int(estimate.observations),
            "latencyMs": .number(mean.latencyS * 1000),
            "latencyPercentileMs": .number(latencyPercentileS * 1000),
            "energyJ": .number(energyJ),
            "energyPercentileJ": .number(energyPercentileJ),
            "costUsdPerMTok": .number(mean.costUSDPerMTok),
            "memoryGiB": .number(mean.memoryGiB),
            "meanOutputTokens": .number(outputLength.meanTokens),
        ])
    }
}

extension ParetoFront {
    public var json: JSONValue {
        .object([("task", .string(task)), ("inputTokens", .int(inputTokens)), ("points", .array(points.map(\.json)))])
    }
}

extension Infeasibility {
    public var json: JSONValue {
        .fields([
            "error": .string("Infeasible"), "task": .string(task), "limit": .string(limit.rawValue),
            "message": .string(message), "missBy": missBy.json, "requested": requested.json,
            "closest": closest?.json ?? .null,
        ])
    }
}

extension Prediction {
    /// The `predict` JSON: milliseconds, watts, joules, GiB.
    public var json: JSONValue {
        .fields([
            "prefillMs": .number(prefillS * 1000), "decodeMs": .number(decodeS * 1000), "latencyMs": .number(latencyS * 1000),
            "prefillPowerW": .number(prefillPowerW), "decodePowerW": .number(decodePowerW),
            "prefillEnergyJ": .number(prefillEnergyJ), "decodeEnergyJ": .number(decodeEnergyJ), "energyJ": .number(energyJ),
            "memoryGiB": .number(memoryGiB), "fits": .bool(fits), "costUsdPerMTok": .number(costUSDPerMTok),
        ])
    }
}

