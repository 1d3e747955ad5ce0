#!/usr/bin/env python3
"""One engine, many sequences, measured on a running llama-server: what `profile collect` does not measure, for
judging what the profile it calibrated predicts.

  shared-engine.py held-out URL MODEL OUT.jsonl
      Requests of k samples (`n`, sampled as plans of that k run) at outputs of 64-2,048 tokens, and
      requests of k samples started while a background request already decodes `beside` sequences. Each row: the
      model, input, output, parallel, beside and the latency the client saw (seconds), with the engine's own timings.
      `edgeplan predict --held-out OUT.jsonl` predicts every row and prints the MAPE by k and by sequences beside.

  shared-engine.py scenario SOCKET URL ENGINE_MODEL OUT.jsonl [--seconds S] [--seed N]
      Long tasks (deadlines of 40-60 s) and reactive requests (0.5-6 s) through one daemon's `edgeplan ask`, as a
      robot's scheduler sends them: two long tasks a quarter of the run apart, and reactive requests one after another
      meanwhile. Each row is `edgeplan ask --json`'s result with the class and the time it was sent.

Environment: EDGEPLAN (the edgeplan binary, default `edgeplan`). Only the standard library is used.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request

EDGEPLAN = os.environ.get("EDGEPLAN", "edgeplan")
INPUT = 128


def post(url, body, timeout=600):
    request = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=timeout)


def prompt(seed):
    # Token ids, fresh for every request (no cached prefix), INPUT of them.
    rng = random.Random(seed)
    return [rng.randrange(300, 3000) for _ in range(INPUT)]


def timed(url, model, k, output, seed):
    # Sampled as plans of that k are (EngineRequest): one sample greedy, k samples at temperature 0.6 and top-p 0.95.
    sampling = {"temperature": 0.6, "top_p": 0.95} if k > 1 else {"temperature": 0}
    body = {"model": model, "prompt": prompt(seed), "max_tokens": output, "n": k, "ignore_eos": True, "seed": seed,
            "cache_prompt": False, **sampling}
    started = time.monotonic()
    with post(url, body) as response:
        reply = json.load(response)
    seconds = time.monotonic() - started
    return seconds, reply.get("timings", {})


class Background:
    """A request of `sequences` samples decoding until closed: the load a held-out request runs beside."""

    def __init__(self, url, model, sequences, seed):
        self.decoding = threading.Event()
        self.stop = threading.Event()
        body = {"model": model, "prompt": prompt(seed), "max_tokens": 3800, "n": sequences, "ignore_eos": True,
                "temperature": 0.6, "top_p": 0.95, "seed": seed, "cache_prompt": False, "stream": True}
        self.thread = threading.Thread(target=self.run, args=(url, body), daemon=True)
        self.thread.start()

    def run(self, url, body):
        with post(url, body) as response:
            for line in response:
                if line.startswith(b"data: ") and b'"text"' in line:
                    self.decoding.set()
                if self.stop.is_set():
                    return

    def close(self):
        self.stop.set()
        self.thread.join(30)


def held_out(args):
    rows = []
    with open(args.out, "a") as out:
        def record(k, output, beside, seconds, timings):
            row = {"model": args.model, "input": INPUT, "output": output, "parallel": k, "beside": beside,
                   "latency_s": round(seconds, 5), "engine_prompt_ms": timings.get("prompt_ms"),
                   "engine_predicted_ms": timings.get("predicted_ms")}
            out.write(json.dumps(row) + "\n")
            out.flush()
            rows.append(row)
            print(f"  k={k:2d} output={output:5d} beside={beside:2d}: {seconds:7.3f} s", flush=True)

        timed(args.url, args.engine_model, 1, 32, 0)  # warm-up
        for index, (k, output) in enumerate(args.pairs):
            seconds, timings = timed(args.url, args.engine_model, k, output, 100 + index)
            record(k, output, 0, seconds, timings)
        # Beside a request that is already decoding: k = 1 and 4 at 256 and 1,024 tokens.
        for index, beside in enumerate(args.beside):
            background = Background(args.url, args.engine_model, beside, 500 + index)
            if not background.decoding.wait(60):
                sys.exit(f"the background request of {beside} sequences never decoded")
            time.sleep(0.2)
            for k, output in ((1, 256), (4, 1024)):
                seconds, timings = timed(args.url, args.engine_model, k, output, 600 + index * 10 + k)
                record(k, output, beside, seconds, timings)
            background.close()
    print(f"{len(rows)} held-out requests written to {args.out}")


def ask(socket, url, engine_model, task, deadline_s, index):
    run = subprocess.run([EDGEPLAN, "ask", "--socket", socket, "--engine", url, "--engine-model", engine_model,
                          "--task", task, "--prompt", f"Which shelf holds part {index}?", "--answer", "A",
                          "--deadline", f"{deadline_s:.3f}s", "--json"], capture_output=True, text=True, timeout=300)
    try:
        return json.loads(run.stdout)
    except json.JSONDecodeError:
        return {"outcome": "client-error", "error": (run.stderr or run.stdout)[-400:]}


def scenario(args):
    rng = random.Random(args.seed)
    began = time.monotonic()
    results = []
    lock = threading.Lock()

    def keep(task, deadline_s, sent_s, result):
        result.update({"class": task, "sentS": round(sent_s, 3), "deadlineS": deadline_s})
        with lock:
            results.append(result)

    def long_task(index, deadline_s, delay_s):
        time.sleep(delay_s)
        sent = time.monotonic() - began
        keep("long", deadline_s, sent, ask(args.socket, args.url, args.engine_model, "long", deadline_s, index))

    longs = [threading.Thread(target=long_task, args=(1000 + i, rng.uniform(40, 60), i * args.seconds / 4))
             for i in range(2)]
    for thread in longs:
        thread.start()
    time.sleep(1.5)
    index = 0
    while time.monotonic() - began < args.seconds:
        deadline_s = round(rng.uniform(0.5, 6), 2)
        sent = time.monotonic() - began
        keep("reactive", deadline_s, sent, ask(args.socket, args.url, args.engine_model, "reactive", deadline_s, index))
        index += 1
        time.sleep(rng.uniform(0, 0.5))
    for thread in longs:
        thread.join(120)
    with open(args.out, "w") as out:
        for result in sorted(results, key=lambda r: r["sentS"]):
            out.write(json.dumps(result) + "\n")
    for task in ("long", "reactive"):
        mine = [r for r in results if r["class"] == task]
        answered = [r for r in mine if r.get("outcome") == "answered"]
        in_time = [r for r in answered if r["latencyMs"] <= r["deadlineMs"]]
        outcomes = {}
        for r in mine:
            outcomes[r.get("outcome")] = outcomes.get(r.get("outcome"), 0) + 1
        print(f"  {task}: {len(in_time)}/{len(mine)} in time; " + ", ".join(f"{v} {k}" for k, v in sorted(outcomes.items())))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    held = commands.add_parser("held-out")
    held.add_argument("url")
    held.add_argument("model", help="the profile's model name")
    held.add_argument("out")
    held.add_argument("--engine-model", default=None)
    held.add_argument("--beside", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16, 24],
                      help="sequences of the background request (comma-separated)")
    # Each k at two or three outputs, each output at several k: none of them a collection point.
    held.add_argument("--pairs", type=lambda s: [tuple(int(x) for x in p.split(":")) for p in s.split(",")],
                      default=[(1, 64), (1, 700), (1, 2048), (2, 256), (2, 1024), (3, 64), (3, 700), (4, 256),
                               (4, 2048), (5, 512), (6, 64), (6, 1024), (8, 100), (8, 700), (12, 256), (12, 2048),
                               (16, 64), (16, 512), (24, 256), (24, 1024), (32, 100), (32, 700)],
                      help="k:output pairs (comma-separated)")
    run = commands.add_parser("scenario")
    run.add_argument("socket")
    run.add_argument("url")
    run.add_argument("engine_model")
    run.add_argument("out")
    run.add_argument("--seconds", type=float, default=50)
    run.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.command == "held-out":
        args.engine_model = args.engine_model or args.model
        held_out(args)
    else:
        scenario(args)


if __name__ == "__main__":
    main()
