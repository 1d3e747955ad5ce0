"""The README's snippets are files under docs/examples/ that run: each yaml and python block is one of them, to the
byte, and the CLI examples run as written (optional parts left out) on the bundled profile."""
import os
import re
import shlex
import signal
import subprocess
import sys

from helpers import wait_until_answers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
EXAMPLES = os.path.join(ROOT, "docs", "examples")
README = open(os.path.join(ROOT, "README.md")).read()
CLIENT_README = open(os.path.join(ROOT, "clients", "python", "README.md")).read()


def blocks(language, text=README):
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.M | re.S)


def test_every_yaml_and_python_snippet_is_an_example_file():
    files = {name: open(os.path.join(EXAMPLES, name)).read() for name in sorted(os.listdir(EXAMPLES))}
    snippets = blocks("yaml") + blocks("python")
    for snippet in blocks("python", CLIENT_README):
        assert snippet in snippets, f"the client README's snippet is no README example:\n{snippet}"
    assert snippets
    for snippet in snippets:
        assert snippet in files.values(), f"README snippet is no file under docs/examples/:\n{snippet}"
    for name, text in files.items():
        assert text in snippets and f"docs/examples/{name}" in README, f"{name} is not shown in the README"


def test_the_policy_checks_and_the_report_loop_runs_against_a_daemon_serving_it(tmp_path):
    policy = os.path.join(EXAMPLES, "grasp-plan-policy.yaml")
    checked = subprocess.run([BINARY, "policy", "check", policy], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    socket_path = str(tmp_path / "planner.sock")
    daemon = subprocess.Popen([BINARY, "serve", "--socket", socket_path, "--policy", policy, "--rails", "none",
                               "--state-dir", str(tmp_path / "state")], stderr=subprocess.DEVNULL)
    try:
        wait_until_answers(socket_path)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "clients", "python"))
        ran = subprocess.run([sys.executable, os.path.join(EXAMPLES, "report_loop.py"), socket_path], capture_output=True,
                             text=True, env=env, timeout=60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().endswith("-> learned"), ran.stdout


# Commands of the examples block that need what a test machine lacks, and where they are exercised instead.
NEEDS_HARDWARE = {"rails": "a board's power rails (Tests/integration/test_watchdog.py reads sysfs-shaped ones)"}


def example_commands():
    """The examples block's command lines, continuations joined, comments and optional [parts] left out."""
    block = next(b for b in blocks("sh") if b.startswith("edgeplan plan "))
    lines = block.replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        line = re.sub(r"\s+#.*$", "", line)
        line = re.sub(r"\s*\[[^\]]*\]", "", line).strip()
        if line:
            commands.append(line)
    return commands


def test_the_cli_examples_run_as_written(tmp_path):
    """Each line runs in a shell (globs expand as they would for the reader), with the repository's data beside it."""
    for name in ["data", "profiles", "workloads"]:
        os.symlink(os.path.join(ROOT, name), tmp_path / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(BINARY, bin_dir / "edgeplan")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    ran = 0
    for command in example_commands():
        words = shlex.split(command)
        assert words[0] == "edgeplan", command
        if words[1] in NEEDS_HARDWARE:
            continue
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        ran += 1
    assert ran >= 10, ran
    assert (tmp_path / "front.svg").read_text().startswith("<svg")
