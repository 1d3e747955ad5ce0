#!/usr/bin/env bash
# Formats (`scripts/format.sh`) or checks (`scripts/format.sh lint`, what the test script runs) every Swift file with
# the toolchain's swift-format and the repository's .swift-format. Generated files are left out: they are checked
# against their generators instead (scripts/embed-resources.py --check, BundledProfileTests).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.swift' | grep -v -e '^Sources/EdgePlanCore/Resources/BundledResources.swift$' \
    -e '^Sources/EdgePlanCore/Resources/BundledProfile.swift$')
case "${1:-format}" in
format) swift format format --in-place --parallel "${files[@]}" ;;
lint) swift format lint --strict --parallel "${files[@]}" && echo "swift-format: ${#files[@]} files, no findings" ;;
*) echo "usage: scripts/format.sh [format|lint]" >&2; exit 64 ;;
esac
