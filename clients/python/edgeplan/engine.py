"""Running a plan on an OpenAI-compatible engine: the plan's request body, streamed, k samples through `n` or
concurrent requests as the plan says, cut off at the deadline (closing the connection makes llama-server stop)."""
import http.client
import json
import re
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

PROMPT_PLACEHOLDER = "{prompt}"


class EngineFailure(Exception):
    """The engine failed: down, an HTTP error, or a stream that is not an engine's. Names the engine."""


@dataclass
class Sample:
    text: str = ""
    tokens: int = 0
    finish_reason: Optional[str] = None


@dataclass
class EngineRun:
    samples: List[Sample] = field(default_factory=list)
    latency_ms: float = 0.0
    cut: bool = False
    # Stopped because a higher-priority request made it yield (the daemon's preempt event), not at its deadline.
    preempted: bool = False
    # The engine's own time for the request (prompt and generation, from llama-server's `timings`), if it says.
    engine_ms: Optional[float] = None


def fill(body: Any, prompt: str) -> Any:
    """The body with the prompt in place of the placeholder."""
    if isinstance(body, str):
        return body.replace(PROMPT_PLACEHOLDER, prompt)
    if isinstance(body, list):
        return [fill(item, prompt) for item in body]
    if isinstance(body, dict):
        return {key: fill(value, prompt) for key, value in body.items()}
    return body


def choice_letter(text: str, letters: str = "ABCD") -> Optional[str]:
    """The option letter a reply settles on, read after its thinking: "Answer: X", "the answer is X", or a bare letter."""
    final = text.rsplit("</think>", 1)[-1]
    matches = re.findall(r"(?i:answer)\s*(?i:is)?\s*[:：]?\s*\**\(?([A-Z])\)?(?![A-Za-z])", final)
    for letter in reversed(matches):
        if letter.upper() in letters:
            return letter.upper()
    bare = final.strip().strip(".):(").strip()
    return bare if len(bare) == 1 and bare in letters else None


def plurality(answers: List[Optional[str]]) -> Optional[str]:
    """The answer most samples gave; a tie goes to the one reached first; None when no sample answered."""
    counted = Counter(answer for answer in answers if answer is not None)
    if not counted:
        return None
    best = max(counted.values())
    return next(answer for answer in answers if answer is not None and counted[answer] == best)


class EngineConnections:
    """Kept-alive HTTP connections to one engine, reused across calls (one per concurrent request)."""

    def __init__(self, url: str):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"engine URL must be http://HOST:PORT, not {url!r}")
        self.url = url
        self._host, self._port = parsed.hostname, parsed.port or 80
        self._idle: List[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._context: Optional[int] = None

    def take(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return http.client.HTTPConnection(self._host, self._port, timeout=600)

    def give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(connection)

    def close(self) -> None:
        with self._lock:
            for connection in self._idle:
                connection.close()
            self._idle.clear()

    def _json(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
        """One JSON exchange on a kept connection; None when the engine has no such endpoint (a 4xx answer)."""
        connection = self.take()
        try:
            payload = None if body is None else json.dumps(body).encode()
            try:
                connection.request(method, path, payload, {"Content-Type": "application/json"})
                response = connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                connection = http.client.HTTPConnection(self._host, self._port, timeout=600)
                connection.request(method, path, payload, {"Content-Type": "application/json"})
                response = connection.getresponse()
            data = response.read()
        except OSError as error:
            connection.close()
            raise EngineFailure(f"{self.url} does not answer: {error}") from None
        self.give_back(connection)
        if 400 <= response.status < 500:
            return None
        if response.status != 200:
            raise EngineFailure(f"{self.url} answered HTTP {response.status}: {data[:400].decode(errors='replace')}")
        try:
            return json.loads(data)
        except ValueError:
            return None

    def context_per_slot(self) -> Optional[int]:
        """The context of one sequence (llama-server's `/props`: a slot's n_ctx), or None where the engine does not say."""
        if self._context is None:
            props = self._json("GET", "/props") or {}
            self._context = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx") or 0
        return self._context or None

    def count_prompt(self, messages: List[Dict[str, str]]) -> Tuple[int, str]:
        """The tokens of a chat request's messages as the engine sees them, and how they were counted: `templated`
        (its chat template, then its tokenizer), `tokenized` (vLLM's /tokenize on the messages) or `estimated`
        (bytes / 4, where the engine has no tokenizer)."""
        templated = self._json("POST", "/apply-template", {"messages": messages})
        if templated and isinstance(templated.get("prompt"), str):
            tokenized = self._json("POST", "/tokenize", {"content": templated["prompt"], "add_special": True, "parse_special": True})
            if tokenized and isinstance(tokenized.get("tokens"), list):
                return len(tokenized["tokens"]), "templated"
        tokenized = self._json("POST", "/tokenize", {"messages": messages})
        if tokenized and isinstance(tokenized.get("count"), int):
            return tokenized["count"], "tokenized"
        size = sum(len(message.get("content", "").encode()) for message in messages)
        return max(1, (size + 3) // 4), "estimated"

    def run(self, body: Dict[str, Any], requests: int = 1, deadline_s: Optional[float] = None,
            stop: Optional[threading.Event] = None) -> EngineRun:
        """Streams `body` to /v1/chat/completions (`requests` copies at once); at the deadline every connection is
        closed and the samples hold what streamed until then."""
        payload = json.dumps({**body, "stream": True}).encode()
        n = int(body.get("n", 1))
        runs: List[List[Sample]] = [[Sample() for _ in range(n)] for _ in range(requests)]
        errors: List[str] = []
        own_ms: List[float] = []
        finished: List[List[int]] = [[] for _ in range(requests)]
        connections = [self.take() for _ in range(requests)]
        cut = threading.Event()
        started = time.monotonic()

        def stream(index: int) -> None:
            try:
                try:
                    connection = connections[index]
                    connection.request("POST", "/v1/chat/completions", payload, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    # A kept connection the engine closed while idle: nothing ran, so a fresh one measures nothing twice.
                    connections[index].close()
                    connection = connections[index] = http.client.HTTPConnection(self._host, self._port, timeout=600)
                    connection.request("POST", "/v1/chat/completions", payload, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                if response.status != 200:
                    errors.append(f"{self.url} answered HTTP {response.status}: {response.read(400).decode(errors='replace')}")
                    return
                for raw in response:
                    line = raw.decode(errors="replace").strip()
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    try:
                        event = json.loads(line[6:])
                    except ValueError:
                        errors.append(f"{self.url} streamed a line that is not JSON: {line[:200]}")
                        return
                    for choice in event.get("choices", []):
                        sample = runs[index][choice.get("index", 0)]
                        delta = choice.get("delta", {})
                        # Each choice opens with a chunk that names the role and carries no token.
                        role_only = "role" in delta and not delta.get("content") and not delta.get("reasoning_content")
                        if not role_only and (delta.get("content") or delta.get("reasoning_content")
                                              or choice.get("finish_reason") is None):
                            sample.tokens += 1
                            sample.text += delta.get("content") or ""
                        if choice.get("finish_reason"):
                            sample.finish_reason = choice["finish_reason"]
                            finished[index].append(choice.get("index", 0))
                    timings = event.get("timings")
                    if timings and "predicted_ms" in timings:
                        own_ms.append(timings.get("prompt_ms", 0.0) + timings["predicted_ms"])
                    if timings and "predicted_n" in timings:
                        # Asked for usage, llama-server sends a choice's timings in a chunk of their own right after
                        # that choice's last chunk.
                        owner = event["choices"][0].get("index", 0) if event.get("choices") else (
                            finished[index][-1] if finished[index] else 0)
                        runs[index][owner].tokens = timings["predicted_n"]
                response.read()  # drained, so the connection can be kept
            except OSError as error:
                if not cut.is_set():
                    errors.append(f"{self.url} does not answer: {error}")

        threads = [threading.Thread(target=stream, args=(index,), daemon=True) for index in range(requests)]
        for thread in threads:
            thread.start()
        for thread in threads:
            # Joined in short slices while something may stop the run early (the daemon preempting it).
            while True:
                remaining = None if deadline_s is None else max(0.0, deadline_s - (time.monotonic() - started))
                slice_s = remaining if stop is None else min(0.05, remaining if remaining is not None else 0.05)
                thread.join(slice_s)
                if not thread.is_alive() or (remaining is not None and remaining <= slice_s) or (stop is not None and stop.is_set()):
                    break
            if thread.is_alive():
                # The deadline: closing the connections makes the engine stop generating.
                cut.set()
                for connection in connections:
                    if connection.sock is not None:
                        try:
                            connection.sock.shutdown(2)
                        except OSError:
                            pass
                for other in threads:
                    other.join(5)
                break
        latency_ms = (time.monotonic() - started) * 1000
        # A count past max_tokens (an engine that counts differently) is a sample that ran to its cap.
        cap = body.get("max_tokens")
        if isinstance(cap, int):
            for run in runs:
                for sample in run:
                    sample.tokens = min(sample.tokens, cap)
        for connection in connections:
            if cut.is_set() or errors:
                connection.close()
            else:
                self.give_back(connection)
        if errors and not cut.is_set():
            raise EngineFailure(errors[0])
        preempted = cut.is_set() and stop is not None and stop.is_set()
        return EngineRun(samples=[sample for run in runs for sample in run], latency_ms=latency_ms,
                         cut=cut.is_set() and not preempted, engine_ms=max(own_ms) if own_ms else None,
                         preempted=preempted)


@dataclass(frozen=True)
class RunResult:
    """What `Planner.run` did: the answer, the plan it ran, and what was measured."""
    outcome: str  # "answered", "cut" (at the deadline) or "preempted" (a higher-priority plan made it yield)
    answer: Optional[str]
    correct: Optional[bool]
    decision: Any
    latency_ms: float
    sample_output_tokens: List[int]
    energy_j: Optional[float]
    report: Any


Grader = Callable[[str], Optional[str]]
