#!/usr/bin/env bash
# Sets up, builds and plans a request on the bundled Jetson AGX Orin 64GB profile and default policy.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build -c release --product edgeplan
.build/release/edgeplan plan --task mmlu-redux --deadline 8s --energy 200J --input 512
.build/release/edgeplan plan --task natural-plan-trip --deadline 2m --input 1500
