import sys

from edgeplan import Planner

socket, engine, task = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "pick"
prompt = "Which shelf holds the red cup?"
with Planner(socket) as planner:
    result = planner.run(task, prompt, engine=engine, options=["top", "middle", "bottom", "none"], answer="B",
                         deadline_ms=5000)
    print(result.outcome, result.answer, result.correct, result.latency_ms, result.sample_output_tokens, result.energy_j)
