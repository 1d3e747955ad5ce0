"""A real engine for the bring-up tests: llama.cpp's llama-server (built by scripts/llama-server.sh, kept in its
cache) serving a random-weight model that scripts/make-test-model.py writes."""
import contextlib
import json
import random
import signal
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDGEPLAN = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post_json(url, body, timeout=120):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Engine:
    def __init__(self, binary, model, slots=4, context=4096):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port), "-c", str(context), "-np", str(slots),
             "-t", "2", "--no-webui", "-a", "tiny-random"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError("llama-server did not become healthy in 120 s:\n" + self.log_tail())

    def log_tail(self, lines=30):
        with open(self.log.name, errors="replace") as log:
            return "".join(log.readlines()[-lines:])

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def llama_server_binary():
    binary = os.environ.get("EDGEPLAN_LLAMA_SERVER")
    if not binary:
        built = subprocess.run([os.path.join(ROOT, "scripts", "llama-server.sh")], capture_output=True, text=True)
        assert built.returncode == 0, built.stderr[-3000:]
        binary = built.stdout.strip().splitlines()[-1]
    assert os.access(binary, os.X_OK), binary
    return binary


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("models") / "tiny-random.gguf")
    made = subprocess.run(["python3", os.path.join(ROOT, "scripts", "make-test-model.py"), path, "--shape", "tiny"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return path


@pytest.fixture(scope="session")
def engine(llama_server_binary, tiny_model):
    server = Engine(llama_server_binary, tiny_model, slots=4, context=4096)
    yield server
    server.stop()


@contextlib.contextmanager
def serving(socket, profile, policy, *options):
    """`edgeplan serve` on `socket` with `profile` and `policy` (no rails), once its socket is there; stopped after."""
    process = subprocess.Popen([EDGEPLAN, "serve", "--socket", str(socket), "--profile", str(profile), "--policy",
                                str(policy), "--rails", "none", *options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not os.path.exists(socket):
            assert process.poll() is None and time.time() < deadline, f"edgeplan serve exited {process.poll()}"
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(10)


def edgeplan(*args, timeout=600, check=True):
    result = subprocess.run([EDGEPLAN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"edgeplan {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


ENGINE_ARGS = ["--model", "TinyRandom-30M", "--engine-model", "tiny-random"]
PROFILE_SWEEP = ["--context", "1024", "--decode-tokens", "256", "--decode-inputs", "64,256", "--parallel", "1,2,4",
                 "--parallel-tokens", "64", "--repeats", "2", "--warmups", "1", "--max-prefill", "1023", "--rails", "none"]


def write_task_set(path, count, seed=11):
    """Multiple-choice questions with uniformly drawn answers: chance is 25 %."""
    rng = random.Random(seed)
    with open(path, "w") as out:
        for index in range(count):
            out.write(json.dumps({"id": f"q{index}", "prompt": f"Which shelf holds part {index}?",
                                  "options": ["top", "middle", "bottom", "none"], "answer": rng.choice("ABCD")}) + "\n")


def new_cpu_profile(directory):
    """`profile new` for this machine's CPU engine: the figures every engine test's profile starts from."""
    edgeplan("profile", "new", str(directory), "--name", "ci-cpu", "--memory-gib", "24", "--bandwidth-gbps", "60",
             "--fp16-tflops", "4", "--idle-w", "10")


@pytest.fixture(scope="session")
def profile(engine, tmp_path_factory):
    """A profile with the tiny model calibrated from a short collection (its accuracy borrowed until measured)."""
    root = tmp_path_factory.mktemp("calibrated")
    directory = root / "ci-cpu"
    new_cpu_profile(directory)
    trace = root / "tiny.jsonl"
    edgeplan("profile", "collect", "--engine", engine.url, *ENGINE_ARGS, "-o", str(trace), *PROFILE_SWEEP)
    edgeplan("calibrate", "--traces", str(trace), "--model", "TinyRandom-30M", "-o", str(directory),
             "--accuracy-like", "DSR1-Qwen-1.5B")
    return directory


def kill_during(args, delays, grown=None):
    """Starts the command once per delay and SIGKILLs it after that long if it still runs; returns the kills. With
    `grown` (a file), each start waits first, up to 60 s, for the file to grow, so that a busy machine still kills
    the command mid-work."""
    kills = 0
    for delay in delays:
        before = os.path.getsize(grown) if grown and os.path.exists(grown) else 0
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while grown and process.poll() is None and time.time() < deadline:
            if os.path.exists(grown) and os.path.getsize(grown) > before + 400:
                break
            time.sleep(0.05)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    return kills
