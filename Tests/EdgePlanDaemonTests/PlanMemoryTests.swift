import EdgePlanCore
@testable import EdgePlanDaemon
import Testing

struct PlanMemoryTests {
    func entry(_ k: Int) -> PlanMemory.Entry {
        let configuration = Configuration(variant: VariantID(model: k % 2 == 0 ? "DSR1-Qwen-1.5B" : "DSR1-Llama-8B", quantization: .fp16),
                                          mode: .hard, budgetTokens: 128 * (k % 3 + 1), capped: true, parallel: k % 4 + 1)
        return PlanMemory.Entry(taskClass: k % 2 == 0 ? "mmlu-redux" : "natural-plan-trip", configuration: configuration,
                                inputTokens: 100 + k, predictedAccuracy: Double(k) / 1000)
    }

    @Test func remembersForgetsTheOldestAndTeachesOnce() {
        let memory = PlanMemory(capacity: 100)
        for k in 0..<250 { memory.remember("request-\(k)", entry(k)) }
        #expect(memory.count == 100 && memory.forgotten == 150)
        #expect(memory.entry("request-149") == nil)
        for k in 150..<250 { #expect(memory.entry("request-\(k)") == entry(k), "plan \(k) comes back whole") }
        #expect(memory.markReported("request-200"))
        #expect(!memory.markReported("request-200"), "each plan teaches once")
        #expect(memory.entry("request-200")?.reported == true)
        #expect(!memory.markReported("request-3"), "a forgotten plan teaches nothing")
        // The same id again replaces its plan in place.
        memory.remember("request-249", entry(7))
        #expect(memory.entry("request-249") == entry(7) && memory.count == 100)
        #expect(memory.entry("never-planned") == nil)
    }

    @Test func noCapacityRemembersNothing() {
        let memory = PlanMemory(capacity: 0)
        memory.remember("r", entry(1))
        #expect(memory.entry("r") == nil && memory.count == 0)
    }
}
