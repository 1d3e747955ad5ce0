"""End to end: `edgeplan simulate` and `edgeplan workload generate` as a user runs them."""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
POLICY = os.path.join(ROOT, "workloads", "home-robot-policy.yaml")


def run(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_same_seed_gives_the_same_bytes_and_plots(tmp_path):
    workload = tmp_path / "w.jsonl"
    generated = run("workload", "generate", "--mix", "workloads/home-robot-mix.yaml", "--rate", "40/h", "--duration", "4h",
                    "--seed", "11", "-o", str(workload))
    assert generated.returncode == 0, generated.stderr
    lines = workload.read_text().splitlines()
    assert 100 <= len(lines) <= 220
    first = run("simulate", "--workload", str(workload), "--policy", POLICY, "--seed", "7", "--json", "--plot", str(tmp_path / "plots"))
    second = run("simulate", "--workload", str(workload), "--policy", POLICY, "--seed", "7", "--json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    report = json.loads(first.stdout)
    assert report["schemaVersion"] == 1 and report["requests"] == len(lines)
    assert [p["name"] for p in report["policies"]] == ["home-robot-policy", "static", "mean-latency"]
    other = run("simulate", "--workload", str(workload), "--policy", POLICY, "--seed", "8", "--json")
    assert other.stdout != first.stdout
    plots = sorted(os.listdir(tmp_path / "plots"))
    assert "accuracy-vs-deadline.svg" in plots and "deadline-hits-over-time.svg" in plots
    assert all(open(tmp_path / "plots" / name).read().startswith("<svg") for name in plots)


def test_bad_workloads_name_file_and_line_and_simulate_nothing(tmp_path):
    for body, where in [
        ('{"at": "1s", "task": "manipulation-step"}\n{"at": "2s", "task": "manipulation-step", "deadline": "8"}\n', ":2:"),
        ('{"at": "5s", "task": "manipulation-step"}\n{"at": "1s", "task": "manipulation-step"}\n', ":2:"),
        ('{"at": "1s", "task": "juggling"}\n', ":1:"),
        ('{"at": "-1s", "task": "manipulation-step"}\n', ":1:"),
        ('{"task": "manipulation-step"}\n', ":1:"),
    ]:
        path = tmp_path / "bad.jsonl"
        path.write_text(body)
        result = run("simulate", "--workload", str(path), "--policy", POLICY, "--json")
        assert result.returncode != 0
        assert f"bad.jsonl{where}" in result.stderr, result.stderr
        assert result.stdout == ""


def test_an_empty_workload_or_a_directory_is_an_error_not_a_table_of_zeros(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    comments = tmp_path / "blank.jsonl"
    comments.write_text("\n\n")
    for path, message, code in [(empty, "has no tasks", 65), (comments, "has no tasks", 65), (tmp_path, "is a directory", 74),
                                (tmp_path / "missing.jsonl", "cannot read workload: No such file or directory", 74)]:
        result = run("simulate", "--workload", str(path), "--policy", POLICY, "--json")
        assert result.returncode == code and f"{path}: {message}" in result.stderr, (path, result.returncode, result.stderr)
        assert result.stdout == ""


def test_the_table_and_plots_read_cleanly(tmp_path):
    """Percentages always with one decimal, no -0.00, columns aligned even with a long fixed: baseline, the plot
    directory named once with one slash; accuracy against deadline marks each point and draws no line across
    deadlines without data."""
    import re
    plots = tmp_path / "plots"
    result = run("simulate", "--workload", "workloads/home-robot-day.jsonl", "--policy", POLICY, "--baseline", "static",
                 "--baseline", "fixed:DSR1-Qwen-14B/fp16/hard/1024x16", "--plot", str(plots) + "/")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = [line for line in lines if line.startswith("  ")]
    assert table and len({len(line) for line in table}) == 1, {len(line) for line in table}
    assert not re.search(r"-0\.0+\b", result.stdout)
    percents = re.findall(r"(\S+) %", "\n".join(table))
    assert percents and all(re.fullmatch(r"\d+\.\d", value) for value in percents), set(percents)
    assert lines[-1] == f"plots written to {plots}/"
    svg = (plots / "accuracy-vs-deadline.svg").read_text()
    circles = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)]
    xs = sorted(set(circles))
    bin_width = min(b - a for a, b in zip(xs, xs[1:]))
    for points in re.findall(r'<polyline points="([^"]+)"', svg):
        px = [float(point.split(",")[0]) for point in points.split()]
        assert all(b - a <= bin_width * 1.05 for a, b in zip(px, px[1:])), (px, bin_width)
    # Every point of every line is marked.
    assert len(circles) >= sum(len(points.split()) for points in re.findall(r'<polyline points="([^"]+)"', svg))
