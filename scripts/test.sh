#!/usr/bin/env bash
# Runs every test: Swift unit tests, daemon end-to-end tests with the real systemd parts, unit-file checks.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
python3 scripts/embed-resources.py --check || { echo "bundled resources are stale: run scripts/embed-resources.py"; exit 1; }
swift build --build-tests
swift test --skip-build
EDGEPLAN_BIN="$PWD/.build/debug/edgeplan" python3 -m pytest -q Tests/integration
# `make install` into a staging root; the installed units must pass systemd-analyze verify there.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
make -s install DESTDIR="$root" CONFIGURATION=debug
test -x "$root/usr/local/bin/edgeplan" && test -f "$root/etc/edgeplan/policy.yaml"
test -f "$root/usr/local/lib/systemd/catalog/edgeplan.catalog"
# Completions know the subcommands (simulate is one of the newest).
grep -q simulate "$root/usr/local/share/bash-completion/completions/edgeplan"
grep -q simulate "$root/usr/local/share/zsh/site-functions/_edgeplan"
grep -q simulate "$root/usr/local/share/fish/vendor_completions.d/edgeplan.fish"
bash -n "$root/usr/local/share/bash-completion/completions/edgeplan"
"$root/usr/local/bin/edgeplan" profile check "$root/usr/local/share/edgeplan/profiles/jetson-agx-orin-64gb"
mkdir -p "$root/usr/lib/systemd" "$root/bin"
cp /usr/bin/kill "$root/bin/kill"
cp -r /lib/systemd/system "$root/usr/lib/systemd/system"
units="$root/usr/local/lib/systemd/system"
systemd-analyze verify --root="$root" "$units/edgeplan.socket" "$units/edgeplan.service"
systemd-analyze security --offline=true --root="$root" "$units/edgeplan.service" | tail -1
echo "installed tree and unit files verified"
