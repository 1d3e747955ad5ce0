import EdgePlanCore
import Testing

@testable import EdgePlanDaemon

struct PlanMemoryTests {
    func entry(_ k: Int) -> PlanMemory.Entry {
        let configuration = Configuration(
            variant: VariantID(model: k % 2 == 0 ? "DSR1-Qwen-1.5B" : "DSR1-Llama-8B", quantization: .fp16),
            mode: .hard,
            budgetTokens: 128 * (k % 3 + 1),
            capped: true,
            parallel: k % 4 + 1
        )
        return PlanMemory.Entry(
            taskClass: k % 2 == 0 ? "mmlu-redux" : "natural-plan-trip",
            configuration: configuration,
            inputTokens: 100 + k
        )
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

    /// Random plans over a pool of ids larger than the memory, against a plain model of the ring: every id is
    /// found exactly when the model still holds it, with its latest plan. Exercises the index's growth, probe runs
    /// and the removals that shift them back.
    @Test func agreesWithAPlainRingOverRandomPlans() {
        for (capacity, pool) in [(1, 3), (37, 50), (1000, 1500), (4096, 20_000)] {
            let memory = PlanMemory(capacity: capacity)
            var ring: [String] = []
            var latest: [String: Int] = [:]
            var head = 0
            var state: UInt64 = 99
            for step in 0..<(capacity * 6 + 20) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let id = "r\(Int(state >> 33) % pool)"
                memory.remember(id, entry(step))
                if latest[id] == nil {
                    if ring.count < capacity {
                        ring.append(id)
                    } else {
                        latest[ring[head]] = nil
                        ring[head] = id
                        head = (head + 1) % capacity
                    }
                }
                latest[id] = step
                if step % max(97, capacity / 4) == 0 || step == capacity * 6 + 19 {
                    for k in 0..<pool {
                        let remembered = memory.entry("r\(k)")
                        #expect(
                            remembered == latest["r\(k)"].map(entry),
                            "capacity \(capacity), id r\(k) after step \(step)"
                        )
                    }
                }
            }
            #expect(memory.count == min(capacity, latest.count))
        }
    }

    @Test func noCapacityRemembersNothing() {
        let memory = PlanMemory(capacity: 0)
        memory.remember("r", entry(1))
        #expect(memory.entry("r") == nil && memory.count == 0)
    }
}
