#!/usr/bin/env bash
# Regenerates profiles/nvidia-h100-80gb from the H100 traces in data/h100 (see data/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${EDGEPLAN_BIN:-.build/release/edgeplan}
[ -x "$bin" ] || swift build -c release --product edgeplan
rm -rf profiles/nvidia-h100-80gb
for model in DSR1-Qwen-1.5B DSR1-Llama-8B; do
  "$bin" calibrate --traces "data/h100/traces-$model.jsonl" data/h100/tbt-"$model"-I*-B1.json \
    --model "$model" --device nvidia-h100-80gb -o profiles/nvidia-h100-80gb
done
"$bin" profile check profiles/nvidia-h100-80gb
