import ArgumentParser
import EdgePlanCore

@main
struct EdgePlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgeplan",
        abstract: "Deployment planner for reasoning LLMs on edge GPUs.",
        version: EdgePlanVersion.string,
        subcommands: [
            Serve.self, Plan.self, Ask.self, Frontier.self, Predict.self, Budget.self, Validate.self, Rails.self,
            Calibrate.self,
            ProfileCommand.self, AccuracyCommand.self, PolicyCommand.self, Simulate.self, WorkloadCommand.self,
            Status.self, Reload.self, Watch.self, FleetCommand.self,
        ]
    )
}
