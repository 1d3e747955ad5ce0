import EdgePlanCore
import Logging

/// What a decision's journal entry says, taken from the plan when it is made: only these numbers and (shared)
/// strings wait in the journal queue, not the whole plan with its request body and length model (about 3.7 KB a
/// plan; a full queue of 4,096 held 15 MB). The fields are formatted on the writer thread.
struct DecisionRecord: Sendable {
    let task: String
    let configuration: Configuration
    let deadlineS, latencyPercentileS, energyPercentileJ, latencyS, energyJ: Double
    let accuracy, accuracyLow, accuracyHigh, missProbability: Double
    let energyBudgetJ: Double?
    let inputTokens: Int
    let objective: Objective
    let accuracySource: AccuracySource
    let profileVersion, policyVersion: String
    let explored: Bool
    let requestID: String?

    init(_ plan: Plan) {
        task = plan.task
        configuration = plan.configuration
        deadlineS = plan.deadlineS
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
    }

    var metadata: Logger.Metadata {
        let decimal = PlannerService.decimal
        return [
            "MESSAGE_ID": "\(PlannerService.planDecidedMessageID)",
            "task": "\(task)", "model": "\(configuration.variant.model)",
            "quant": "\(configuration.variant.quantization.rawValue)", "mode": "\(configuration.mode.rawValue)",
            "token_budget": "\(configuration.budgetTokens.map(String.init) ?? "none")",
            "parallel": "\(configuration.parallel)", "deadline_ms": "\(decimal(deadlineS * 1000))",
            "input_tokens": "\(inputTokens)", "pred_latency_p95_ms": "\(decimal(latencyPercentileS * 1000))",
            "pred_energy_p95_j": "\(decimal(energyPercentileJ))", "objective": "\(objective.rawValue)",
            "profile_version": "\(profileVersion)", "policy_version": "\(policyVersion)",
            "energy_budget_j": "\(energyBudgetJ.map { decimal($0) } ?? "none")",
            "pred_latency_ms": "\(decimal(latencyS * 1000))", "pred_energy_j": "\(decimal(energyJ))",
            "pred_accuracy": "\(decimal(accuracy))", "accuracy_low": "\(decimal(accuracyLow))",
            "accuracy_high": "\(decimal(accuracyHigh))", "accuracy_source": "\(accuracySource.rawValue)",
            "miss_prob": "\(decimal(missProbability))", "explored": "\(explored)",
            "request_id": "\(requestID ?? "")",
        ]
    }
}
