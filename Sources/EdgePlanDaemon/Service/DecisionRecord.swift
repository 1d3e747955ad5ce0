import EdgePlanCore
import Logging

/// What a decision's journal entry says, taken from the plan when it is made: only these numbers and (shared)
/// strings wait in the journal queue, not the whole plan with its request body and length model (about 3.7 KB a
/// plan; a full queue of 4,096 held 15 MB). The fields are formatted on the writer thread.
struct DecisionRecord: Sendable {
    let task: String
    let configuration: Configuration
    let deadlineS, percentile, latencyPercentileS, energyPercentileJ, latencyS, energyJ: Double
    let accuracy, accuracyLow, accuracyHigh, missProbability: Double
    let energyBudgetJ: Double?
    let inputTokens: Int
    let objective: Objective
    let accuracySource: AccuracySource
    let profileVersion, policyVersion: String
    let explored: Bool
    let requestID: String?
    /// The load it was planned against (with the policy's ledger on).
    let load: PlanLoad?

    init(_ plan: Plan) {
        task = plan.task
        configuration = plan.configuration
        deadlineS = plan.deadlineS
        percentile = plan.percentile
        latencyPercentileS = plan.latencyPercentileS
        energyPercentileJ = plan.energyPercentileJ
        latencyS = plan.latencyS
        energyJ = plan.energyJ
        accuracy = plan.accuracy
        accuracyLow = plan.estimate.low
        accuracyHigh = plan.estimate.high
        missProbability = plan.missProbability
        energyBudgetJ = plan.energyBudgetJ
        inputTokens = plan.inputTokens
        objective = plan.objective
        accuracySource = plan.accuracySource
        profileVersion = plan.profileVersion
        policyVersion = plan.policyVersion
        explored = plan.explored
        requestID = plan.requestID
        load = plan.load
    }

    /// The entry's own fields, in the order of their names, formatted straight into the writer's buffer.
    func write(into fields: inout JournalFields) {
        let decimal = PlannerService.decimal
        fields.append("MESSAGE_ID", PlannerService.planDecidedMessageID)
        fields.append("EDGEPLAN_ACCURACY_HIGH", decimal(accuracyHigh))
        fields.append("EDGEPLAN_ACCURACY_LOW", decimal(accuracyLow))
        fields.append("EDGEPLAN_ACCURACY_SOURCE", accuracySource.rawValue)
        fields.append("EDGEPLAN_DEADLINE_MS", decimal(deadlineS * 1000))
        fields.append("EDGEPLAN_ENERGY_BUDGET_J", energyBudgetJ.map { decimal($0) } ?? "none")
        fields.append("EDGEPLAN_EXPLORED", explored ? "true" : "false")
        fields.append("EDGEPLAN_INPUT_TOKENS", String(inputTokens))
        // The load assumed (ledger on): what ran beside it, its wait for a slot, and the runs it made yield.
        if let load {
            fields.append("EDGEPLAN_LOAD_IDLE_LATENCY_TAIL_MS", decimal(load.idleLatencyPercentileS * 1000))
            fields.append("EDGEPLAN_LOAD_PEAK_SEQUENCES", String(load.peakSequences))
            fields.append(
                "EDGEPLAN_LOAD_PREEMPTS",
                load.preempts.isEmpty ? "none" : load.preempts.joined(separator: ",")
            )
            fields.append("EDGEPLAN_LOAD_RUNS_BESIDE", String(load.runsBeside))
            fields.append("EDGEPLAN_LOAD_SEQUENCES_BESIDE", String(load.sequencesBeside))
            fields.append("EDGEPLAN_LOAD_WAIT_MS", decimal(load.waitS * 1000))
        }
        fields.append("EDGEPLAN_MISS_PROB", decimal(missProbability))
        fields.append("EDGEPLAN_MODE", configuration.mode.rawValue)
        fields.append("EDGEPLAN_MODEL", configuration.variant.model)
        fields.append("EDGEPLAN_OBJECTIVE", objective.rawValue)
        fields.append("EDGEPLAN_PARALLEL", String(configuration.parallel))
        // The percentile the tail figures are taken at (0.95 unless the policy says otherwise). Field names hold no
        // digits: the journal catalog fills only placeholders made of capital letters and underscores.
        fields.append("EDGEPLAN_PERCENTILE", decimal(percentile))
        fields.append("EDGEPLAN_POLICY_VERSION", policyVersion)
        fields.append("EDGEPLAN_PRED_ACCURACY", decimal(accuracy))
        fields.append("EDGEPLAN_PRED_ENERGY_J", decimal(energyJ))
        fields.append("EDGEPLAN_PRED_ENERGY_TAIL_J", decimal(energyPercentileJ))
        fields.append("EDGEPLAN_PRED_LATENCY_MS", decimal(latencyS * 1000))
        fields.append("EDGEPLAN_PRED_LATENCY_TAIL_MS", decimal(latencyPercentileS * 1000))
        fields.append("EDGEPLAN_PROFILE_VERSION", profileVersion)
        fields.append("EDGEPLAN_QUANT", configuration.variant.quantization.rawValue)
        fields.append("EDGEPLAN_REQUEST_ID", requestID ?? "")
        fields.append("EDGEPLAN_TASK", task)
        fields.append("EDGEPLAN_TOKEN_BUDGET", configuration.budgetTokens.map(String.init) ?? "none")
    }

    /// The same fields as log metadata, keyed by their journal names (for a logger without the journal sink).
    var metadata: Logger.Metadata {
        var fields = JournalFields()
        write(into: &fields)
        return Logger.Metadata(uniqueKeysWithValues: fields.pairs.map { ($0.0, .string($0.1)) })
    }
}
