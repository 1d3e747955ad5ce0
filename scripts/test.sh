#!/usr/bin/env bash
# Runs every test: Swift unit tests, daemon end-to-end tests with the real systemd parts, unit-file checks.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests
python3 scripts/embed-resources.py --check || { echo "bundled resources are stale: run scripts/embed-resources.py"; exit 1; }
# One format, checked: any swift-format finding fails the run (scripts/format.sh formats).
./scripts/format.sh lint
# The project's own targets build without a warning.
EDGEPLAN_WARNINGS_AS_ERRORS=1 swift build --build-tests
EDGEPLAN_WARNINGS_AS_ERRORS=1 swift test --skip-build
EDGEPLAN_BIN="$PWD/.build/debug/edgeplan" python3 -m pytest -q Tests/integration
# The fleet on a real PostgreSQL, started by the tests (EDGEPLAN_FLEET_CUTS sets the link cuts; 20 here).
EDGEPLAN_BIN="$PWD/.build/debug/edgeplan" python3 -m pytest -q -rA Tests/fleet
# Bring-up on a real engine: llama.cpp's llama-server (built once, then kept by version) serving a random-weight model.
EDGEPLAN_LLAMA_SERVER=$(./scripts/llama-server.sh) EDGEPLAN_BIN="$PWD/.build/debug/edgeplan" python3 -m pytest -q Tests/engine
# `make install` into a staging root; the installed units must pass systemd-analyze verify there.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# The same flags as the build above, so that nothing is compiled again.
EDGEPLAN_WARNINGS_AS_ERRORS=1 make -s install DESTDIR="$root" CONFIGURATION=debug
test -x "$root/usr/local/bin/edgeplan" && test -f "$root/etc/edgeplan/policy.yaml"
test -f "$root/usr/local/lib/systemd/catalog/edgeplan.catalog"
# Completions know the subcommands (simulate is one of the newest).
grep -q simulate "$root/usr/local/share/bash-completion/completions/edgeplan"
grep -q simulate "$root/usr/local/share/zsh/site-functions/_edgeplan"
grep -q simulate "$root/usr/local/share/fish/vendor_completions.d/edgeplan.fish"
bash -n "$root/usr/local/share/bash-completion/completions/edgeplan"
# The man page renders and documents the newest subcommand.
MANWIDTH=100 man -l "$root/usr/local/share/man/man1/edgeplan.1" 2>&1 | grep -q "Follow a running daemon"
"$root/usr/local/bin/edgeplan" profile check "$root/usr/local/share/edgeplan/profiles/jetson-agx-orin-64gb"
mkdir -p "$root/usr/lib/systemd" "$root/bin"
cp /usr/bin/kill "$root/bin/kill"
cp -r /lib/systemd/system "$root/usr/lib/systemd/system"
units="$root/usr/local/lib/systemd/system"
systemd-analyze verify --root="$root" "$units/edgeplan.socket" "$units/edgeplan.service" "$units/edgeplan-fleet.service"
systemd-analyze security --offline=true --root="$root" "$units/edgeplan.service" | tail -1
echo "installed tree and unit files verified"
# The Debian package, built as it ships (release, the Swift runtime linked in): unpacked into a scratch root, its file
# list and units checked; then installed in a Debian guest that boots systemd under qemu (Tests/guest).
CONFIGURATION=release ./scripts/package-deb.sh "$root/dist" > /dev/null
deb=$(ls "$root"/dist/edgeplan_*.deb)
pkgroot="$root/pkg"
dpkg-deb -x "$deb" "$pkgroot"
for file in usr/bin/edgeplan usr/lib/systemd/system/edgeplan.service usr/lib/systemd/system/edgeplan.socket usr/lib/sysusers.d/edgeplan.conf \
            usr/lib/systemd/catalog/edgeplan.catalog etc/edgeplan/policy.yaml usr/share/edgeplan/profiles/jetson-agx-orin-64gb/device.yaml \
            usr/share/bash-completion/completions/edgeplan usr/share/zsh/site-functions/_edgeplan usr/share/fish/vendor_completions.d/edgeplan.fish \
            usr/share/man/man1/edgeplan.1; do
    test -e "$pkgroot/$file" || { echo "package lacks $file"; exit 1; }
done
dpkg-deb -f "$deb" Package Version Depends
test "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/edgeplan/policy.yaml
grep -q "ExecStart=/usr/bin/edgeplan serve" "$pkgroot/usr/lib/systemd/system/edgeplan.service"
mkdir -p "$pkgroot/bin" && cp /usr/bin/kill "$pkgroot/bin/kill"
cp -r /lib/systemd/system/. "$pkgroot/usr/lib/systemd/system/"
systemd-analyze verify --root="$pkgroot" "$pkgroot/usr/lib/systemd/system/edgeplan.socket" "$pkgroot/usr/lib/systemd/system/edgeplan.service"
echo "Debian package built, unpacked and its units verified"
EDGEPLAN_DEB="$deb" python3 -m pytest -q -rA Tests/guest
