import Foundation

/// The JSON shapes shared by the CLI and the daemon (camelCase, units in names).
extension Plan: JSONWritable {
    /// The plan as the CLI prints it and the daemon replies with it, written field by field: the daemon's hottest
    /// reply is built without a ``JSONValue`` tree. This is the one definition of its shape; ``json`` reads it back.
    public func writeJSON(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("task")
        writer.string(task)
        writer.key("requestId")
        writer.string(requestID)
        writer.key("model")
        writer.string(configuration.variant.model)
        writer.key("quantization")
        writer.string(configuration.variant.quantization.rawValue)
        writer.key("mode")
        writer.string(configuration.mode.rawValue)
        writer.key("tokenBudget")
        writer.int(configuration.budgetTokens)
        writer.key("capped")
        writer.bool(configuration.capped)
        writer.key("parallel")
        writer.int(configuration.parallel)
        writer.key("inputTokens")
        writer.int(inputTokens)
        writer.key("deadlineMs")
        writer.number(deadlineS * 1000)
        writer.key("energyBudgetJ")
        writer.number(energyBudgetJ)
        writer.key("predicted")
        writer.beginObject()
        writer.key("latencyMs")
        writer.number(latencyS * 1000)
        writer.key("latencyPercentileMs")
        writer.number(latencyPercentileS * 1000)
        writer.key("percentile")
        writer.number(percentile)
        writer.key("energyJ")
        writer.number(energyJ)
        writer.key("energyPercentileJ")
        writer.number(energyPercentileJ)
        writer.key("accuracy")
        writer.number(accuracy)
        writer.key("accuracyLow")
        writer.number(estimate.low)
        writer.key("accuracyHigh")
        writer.number(estimate.high)
        writer.key("accuracySource")
        writer.string(accuracySource.rawValue)
        writer.key("observations")
        writer.int(estimate.observations)
        writer.key("costUsdPerMTok")
        writer.number(costUSDPerMTok)
        writer.key("memoryGiB")
        writer.number(memoryGiB)
        writer.key("missProbability")
        writer.number(missProbability)
        writer.key("meanOutputTokens")
        writer.number(meanOutputTokens)
        writer.key("percentileOutputTokens")
        writer.number(percentileOutputTokens)
        writer.key("capProbability")
        writer.number(outputLength.capProbability)
        writer.key("lengthSource")
        writer.string(outputLength.source.rawValue)
        writer.endObject()
        writer.key("objective")
        writer.string(objective.rawValue)
        writer.key("explored")
        writer.bool(explored)
        writer.key("request")
        engineRequest.writeJSON(to: &writer)
        writer.key("profileVersion")
        writer.string(profileVersion)
        writer.key("policyVersion")
        writer.string(policyVersion)
        writer.key("load")
        if let load {
            writer.beginObject()
            writer.key("runsBeside")
            writer.int(load.runsBeside)
            writer.key("sequencesBeside")
            writer.int(load.sequencesBeside)
            writer.key("peakSequences")
            writer.int(load.peakSequences)
            writer.key("meanSequences")
            writer.number(load.meanSequences)
            writer.key("waitMs")
            writer.number(load.waitS * 1000)
            writer.key("idleLatencyPercentileMs")
            writer.number(load.idleLatencyPercentileS * 1000)
            writer.key("preempts")
            writer.beginArray()
            for id in load.preempts { writer.string(id) }
            writer.endArray()
            writer.key("delayed")
            writer.beginObject()
            for (id, endS) in load.delayed.sorted(by: { $0.key < $1.key }) {
                writer.key(id)
                writer.number(endS * 1000)
            }
            writer.endObject()
            writer.endObject()
        } else {
            writer.null()
        }
        writer.endObject()
    }
}

extension EngineRequest: JSONWritable {
    /// The engine's request body and how to combine its answers.
    public func writeJSON(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("body")
        writer.beginObject()
        writer.key("model")
        writer.string(model)
        writer.key("messages")
        writer.beginArray()
        for message in messages {
            writer.beginObject()
            writer.key("role")
            writer.string(message.role)
            writer.key("content")
            writer.string(message.content)
            writer.endObject()
        }
        writer.endArray()
        writer.key("max_tokens")
        writer.int(maxTokens)
        // An engine without n gets one sample a request, and `requests` says how many to send.
        if requests == 1 {
            writer.key("n")
            writer.int(n)
        }
        writer.key("temperature")
        writer.number(temperature)
        writer.key("top_p")
        writer.number(topP)
        if continueFinalMessage {
            writer.key("continue_final_message")
            writer.bool(true)
            writer.key("add_generation_prompt")
            writer.bool(false)
        }
        if let thinkingBudget {
            writer.key(thinkingBudget.field)
            writer.int(thinkingBudget.tokens)
        }
        writer.endObject()
        writer.key("aggregation")
        writer.string(aggregation)
        if let endpoint {
            writer.key("endpoint")
            writer.string(endpoint)
        }
        // Only for an engine other than the default: plans for vLLM keep the shape they always had.
        if engine != .vllm {
            writer.key("engine")
            writer.string(engine.rawValue)
            writer.key("requests")
            writer.int(requests)
        }
        writer.endObject()
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
        .object(
            [
                ("error", .string("Infeasible")), ("task", .string(task)), ("limit", .string(limit.rawValue)),
                ("message", .string(message)),
            ] + measuredFields + [("closest", closest?.json ?? .null)]
        )
    }

    /// The unit a limit's figures are given in, as a field-name suffix, and the factor from the planner's units.
    public var unit: (suffix: String, scale: Double)? {
        switch limit {
        case .deadline: ("Ms", 1000)
        case .energyBudget: ("J", 1)
        case .minAccuracy: ("Accuracy", 1)
        case .context: ("Tokens", 1)
        case .busy: ("Ms", 1000)
        case .memory, .policy: nil
        }
    }

    /// `missBy` and `requested` with the limit's unit in their names: missByMs and requestedMs for a deadline,
    /// missByJ and requestedJ for an energy budget, missByAccuracy and requestedAccuracy (fractions) for the floor.
    public var measuredFields: [(String, JSONValue)] {
        guard let unit else { return [] }
        var fields: [(String, JSONValue)] = [
            ("missBy\(unit.suffix)", missBy.map { .number($0 * unit.scale) } ?? .null),
            ("requested\(unit.suffix)", requested.map { .number($0 * unit.scale) } ?? .null),
        ]
        if limit == .busy {
            fields += [
                ("fitsAfterRequestId", fitsAfter.map { .string($0.requestID) } ?? .null),
                ("fitsAfterMs", fitsAfter.map { .number($0.inS * 1000) } ?? .null),
            ]
        }
        return fields
    }
}

extension Prediction {
    /// The `predict` JSON: milliseconds, watts, joules, GiB.
    public var json: JSONValue {
        .fields([
            "prefillMs": .number(prefillS * 1000), "decodeMs": .number(decodeS * 1000),
            "latencyMs": .number(latencyS * 1000),
            "prefillPowerW": .number(prefillPowerW), "decodePowerW": .number(decodePowerW),
            "prefillEnergyJ": .number(prefillEnergyJ), "decodeEnergyJ": .number(decodeEnergyJ),
            "energyJ": .number(energyJ),
            "memoryGiB": .number(memoryGiB), "fits": .bool(fits), "costUsdPerMTok": .number(costUSDPerMTok),
        ])
    }
}
