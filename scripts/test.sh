#!/usr/bin/env bash
# Runs every test: Swift unit tests, daemon end-to-end tests with the real systemd parts, unit-file checks.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
python3 scripts/embed-resources.py --check || { echo "bundled resources are stale: run scripts/embed-resources.py"; exit 1; }
swift build --build-tests
swift test --skip-build
EDGEPLAN_BIN="$PWD/.build/debug/edgeplan" python3 -m pytest -q Tests/integration
# The shipped units must pass systemd-analyze verify against a root that holds the binary.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/bin"
cp .build/debug/edgeplan "$root/usr/local/bin/edgeplan"
cp /usr/bin/kill "$root/bin/kill"
cp -r /lib/systemd/system "$root/usr/lib/systemd/system"
cp systemd/edgeplan.service systemd/edgeplan.socket "$root/etc/systemd/system/"
systemd-analyze verify --root="$root" "$root/etc/systemd/system/edgeplan.socket" "$root/etc/systemd/system/edgeplan.service"
systemd-analyze security --offline=true --root="$root" "$root/etc/systemd/system/edgeplan.service" | tail -1
echo "unit files verified"
