#!/bin/sh
# Builds a Debian package with the system's own dpkg-deb: the tree `make install PREFIX=/usr` stages (binary,
# units, sysusers.d entry, journal catalog, profiles, default policy as a conffile, shell completions, man page), with
# maintainer scripts that create the group, update the catalog and reload systemd.
# Usage: scripts/package-deb.sh [OUTPUT_DIRECTORY]   (CONFIGURATION=debug for a quick, toolchain-bound build)
set -eu
cd "$(dirname "$0")/.."
out=${1:-dist}
configuration=${CONFIGURATION:-release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/edgeplan"
make -s install DESTDIR="$root" PREFIX=/usr SYSCONFDIR=/etc CONFIGURATION="$configuration"
version=$("$root/usr/bin/edgeplan" --version)
# Depends: the Debian packages that hold the shared libraries the binary names (libsystemd0, libsqlite3-0, libstdc++6,
# libc6, ...), plus systemd for the units. Libraries no package owns (a toolchain's Swift runtime in a debug build)
# are left out.
depends=$( (readelf -d "$root/usr/bin/edgeplan" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | while read -r library; do
    path=$(ldconfig -p | awk -v name="$library" '$1 == name && /x86-64|AArch64|aarch64/ { print $NF; exit }')
    [ -n "$path" ] && { dpkg -S "$path" 2>/dev/null || dpkg -S "$(realpath "$path")" 2>/dev/null; } | head -1 | cut -d: -f1
done; echo systemd) | sort -u | paste -sd, | sed 's/,/, /g')
mkdir -p "$root/DEBIAN" "$out"
cat > "$root/DEBIAN/control" <<CONTROL
Package: edgeplan
Version: $version
Architecture: $(dpkg --print-architecture)
Maintainer: EdgePlan developers <edgeplan@localhost>
Depends: $depends
Section: misc
Priority: optional
Installed-Size: $(du -sk "$root" | cut -f1)
Description: deployment planner for reasoning LLMs on edge GPUs
 A systemd-managed daemon and CLI that choose, per request, the model, quantization,
 token budget and parallel sampling that maximize accuracy within a latency deadline
 and an energy budget.
CONTROL
echo /etc/edgeplan/policy.yaml > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemd-sysusers edgeplan.conf
    journalctl --update-catalog || true
    systemctl daemon-reload
fi
SCRIPT
cat > "$root/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl stop edgeplan.socket edgeplan.service || true
fi
SCRIPT
chmod 755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"
dpkg-deb --root-owner-group --build "$root" "$out/edgeplan_${version}_$(dpkg --print-architecture).deb"
