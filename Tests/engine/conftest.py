"""A real engine for the bring-up tests: llama.cpp's llama-server (built by scripts/llama-server.sh, kept in its
cache) serving a random-weight model that scripts/make-test-model.py writes."""
import json
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


def edgeplan(*args, timeout=600, check=True):
    result = subprocess.run([EDGEPLAN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"edgeplan {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result
