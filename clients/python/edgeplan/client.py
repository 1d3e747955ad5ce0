"""The connection to the daemon."""
import threading
import time
import uuid
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import varlink

from .engine import EngineConnections, Grader, RunResult, choice_letter, fill, plurality
from .errors import from_varlink
from .types import Decision, FrontPoint, ReportResult

DEFAULT_SOCKET = "/run/edgeplan/io.edgeplan.Planner"
DEFAULT_ENGINE = "http://127.0.0.1:8080"


class Planner:
    """A connection to `io.edgeplan.Planner`. Use as a context manager; calls raise typed `EdgePlanError`s."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET):
        self._address = "unix:" + socket_path
        self._client = varlink.Client(address=self._address)
        self._interface = None
        self._engines: Dict[str, EngineConnections] = {}
        # Request ids the daemon made yield to a higher-priority plan (its preempt events), and the runs waiting on them.
        self._preempted: Dict[str, threading.Event] = {}
        self._preempt_lock = threading.Lock()
        self._watcher: Optional[threading.Thread] = None

    def __enter__(self) -> "Planner":
        self._interface = self._client.open("io.edgeplan.Planner")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._interface is not None:
            self._interface.close()
            self._interface = None
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()

    def _call(self, method: str, **parameters: Any) -> Dict[str, Any]:
        if self._interface is None:
            self.__enter__()
        arguments = {key: value for key, value in parameters.items() if value is not None}
        try:
            return getattr(self._interface, method)(**arguments)
        except varlink.VarlinkError as error:
            raise from_varlink(error) from None

    def plan(self, task: str, deadline_ms: Optional[float] = None, energy_budget_j: Optional[float] = None,
             input_tokens: Optional[int] = None, min_accuracy: Optional[float] = None, objective: Optional[str] = None,
             request_id: Optional[str] = None, context_tokens: Optional[int] = None) -> Decision:
        """A decision for one request; limits left out take the policy's values for the task class. `context_tokens`
        is the engine's context for one sequence (a llama-server slot): the prompt and max_tokens fit in it."""
        reply = self._call("Plan", task=task, deadlineMs=None if deadline_ms is None else float(deadline_ms),
                           energyBudgetJ=energy_budget_j, inputTokens=input_tokens, minAccuracy=min_accuracy,
                           objective=objective, requestId=request_id, contextTokens=context_tokens)
        return Decision.from_wire(reply["plan"])

    def report(self, request_id: str, latency_ms: float, correct: Optional[bool] = None, output_tokens: Optional[int] = None,
               sample_output_tokens: Optional[List[int]] = None, energy_j: Optional[float] = None,
               started_at: Optional[float] = None, cut: Optional[bool] = None,
               preempted: Optional[bool] = None) -> ReportResult:
        """What happened when a remembered plan ran; it teaches the daemon latency, accuracy and length. `cut`: the
        run was stopped at its deadline (its lengths are what streamed by then, and teach no length)."""
        return ReportResult.from_wire(self._call(
            "Report", requestId=request_id, latencyMs=float(latency_ms), correct=correct, outputTokens=output_tokens,
            sampleOutputTokens=sample_output_tokens, energyJ=energy_j, startedAt=started_at, cut=cut or None,
            preempted=preempted or None))

    def run(self, task: str, prompt: str, engine: Union[str, Mapping[str, str], None] = None, answer: Optional[str] = None, grader: Optional[Grader] = None,
            options: Optional[Sequence[str]] = None, deadline_ms: Optional[float] = None,
            energy_budget_j: Optional[float] = None, input_tokens: Optional[int] = None,
            engine_model: Optional[str] = None, report: bool = True) -> RunResult:
        """The whole loop for one request: plan, run the plan on the engine (k samples through `n` or concurrent
        requests, as the plan's request says), take the majority answer, report, and return what happened.

        `grader` turns a sample's text into its answer (default: the option letter it settles on). With `answer`,
        the run is reported correct or not. At the deadline the engine's requests are closed and the run is
        reported as cut (its latency judged at the lengths streamed by then, which teach no length). An infeasible request
        raises `Infeasible` and runs nothing; an engine failure raises `EngineFailure` and reports nothing.
        Connections to the daemon and the engine are kept for the next call. `engine` is one URL, or a URL per model
        (the plan's model name) when each model has its own server; without it, each plan goes to the endpoint the
        daemon's policy maps its model to (`global.endpoints`), else to http://127.0.0.1:8080."""
        if options:
            prompt = prompt + "\n" + "\n".join(f"{chr(65 + i)}. {text}" for i, text in enumerate(options))
        letters = "".join(chr(65 + i) for i in range(len(options))) if options else "ABCD"
        grade = grader or (lambda text: choice_letter(text, letters))
        request_id = str(uuid.uuid4())
        # Subscribed, and this run's id registered, before planning: a preemption of it is never missed.
        self._follow_preemptions()
        with self._preempt_lock:
            stop = self._preempted[request_id] = threading.Event()
        try:
            began = time.monotonic()
            # Connections to the engines are kept per URL. Before the plan names a model, the prompt is counted on the
            # default engine (the only one, or the first of the map).
            def connections_to(url: str) -> EngineConnections:
                if url not in self._engines:
                    self._engines[url] = EngineConnections(url)
                return self._engines[url]

            routed = engine is None
            if routed:
                # The policy routes by model: a first plan names the engine, which then counts the prompt, and the
                # request is planned again under the same id (replacing the first plan).
                estimate = input_tokens or max(1, (len(prompt.encode()) + 3) // 4)
                probe = self.plan(task, deadline_ms=deadline_ms, energy_budget_j=energy_budget_j, input_tokens=estimate,
                                  request_id=request_id)
                engine = probe.request.get("endpoint") or DEFAULT_ENGINE
            first = connections_to(engine if isinstance(engine, str) else next(iter(engine.values())))
            # The prompt as the engine counts it (its chat template, then its tokenizer); the plan's body may add to the
            # message, so it is counted again once planned, and planned again where it is longer.
            counted, source = (input_tokens, "given") if input_tokens else first.count_prompt([{"role": "user", "content": prompt}])
            context = first.context_per_slot()
            decision = self.plan(task, deadline_ms=deadline_ms, energy_budget_j=energy_budget_j, input_tokens=counted,
                                 request_id=request_id, context_tokens=context)
            body = fill(decision.request["body"], prompt)
            if source != "given" and source != "estimated" and isinstance(body.get("messages"), list):
                exact, _ = first.count_prompt(body["messages"])
                if exact > counted:
                    counted = exact
                    decision = self.plan(task, deadline_ms=deadline_ms, energy_budget_j=energy_budget_j, input_tokens=counted,
                                         request_id=request_id, context_tokens=context)
                    body = fill(decision.request["body"], prompt)
            if engine_model:
                body["model"] = engine_model
            if routed:
                url = decision.request.get("endpoint") or DEFAULT_ENGINE
            else:
                url = engine if isinstance(engine, str) else engine[decision.model]
            connections = connections_to(url)
            remaining_s = max(0.001, decision.deadline_ms / 1000 - (time.monotonic() - began))
            started_at = time.time()
            ran = connections.run(body, requests=int(decision.request.get("requests", 1)), deadline_s=remaining_s,
                                  stop=stop)
            answers = [grade(sample.text) for sample in ran.samples]
            voted = plurality(answers)
            correct = None if answer is None else (voted is not None and voted == answer)
            tokens = [sample.tokens for sample in ran.samples]
            reply = None
            if report:
                # A cut run says so: its latency is judged at the lengths streamed by then, which teach no length.
                reply = self.report(request_id, latency_ms=ran.latency_ms, correct=correct, started_at=started_at,
                                    sample_output_tokens=tokens, cut=ran.cut, preempted=ran.preempted)
            outcome = "preempted" if ran.preempted else "cut" if ran.cut else "answered"
            return RunResult(outcome, voted, correct, decision, ran.latency_ms, tokens,
                             reply.attributed_energy_j if reply else None, reply)
        finally:
            with self._preempt_lock:
                self._preempted.pop(request_id, None)

    def _follow_preemptions(self) -> None:
        """Watches the daemon's preempt events on a connection of its own, once per Planner: a run they name is
        stopped at once (its engine requests closed) and reported as preempted."""
        if self._watcher is not None:
            return
        ready = threading.Event()

        def follow() -> None:
            try:
                client = varlink.Client(address=self._address)
                with client.open("io.edgeplan.Planner") as interface:
                    for event in interface.Watch(_more=True, kinds=["preempt"]):
                        ready.set()
                        if event["kind"] != "preempt":
                            continue
                        with self._preempt_lock:
                            for request_id in event["event"].get("requestIds", []):
                                if request_id in self._preempted:
                                    self._preempted[request_id].set()
            except Exception:  # the daemon went away: runs go on to their deadlines
                ready.set()

        self._watcher = threading.Thread(target=follow, daemon=True)
        self._watcher.start()
        ready.wait(2)

    def frontier(self, task: str, input_tokens: int) -> List[FrontPoint]:
        return [FrontPoint.from_wire(point) for point in self._call("Frontier", task=task, inputTokens=input_tokens)["points"]]

    def status(self) -> Dict[str, Any]:
        return self._call("Status")

    def reload(self) -> Dict[str, Any]:
        """Re-read policy and profile; raises `ReloadFailed` (the old policy stays) when the new one is broken."""
        return self._call("Reload")

    def watch(self, kinds: Optional[List[str]] = None) -> Iterator[Dict[str, Any]]:
        """Events as they happen (`kind`, `time`, `event`, `dropped`), on a connection of their own, until the
        caller stops iterating. `kinds` picks among decision, infeasible, report, recalibration, rollback, drift
        and reload."""
        client = varlink.Client(address=self._address)
        with client.open("io.edgeplan.Planner") as interface:
            arguments = {"kinds": kinds} if kinds else {}
            try:
                for event in interface.Watch(_more=True, **arguments):
                    if event["kind"] != "watching":
                        yield event
            except varlink.VarlinkError as error:
                raise from_varlink(error) from None
