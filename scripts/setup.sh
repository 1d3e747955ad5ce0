#!/usr/bin/env bash
# Installs what EdgePlan needs to build and test on Debian: libsystemd, SQLite, systemd tools, a C compiler, dpkg-deb,
# man, the Python Varlink client.
set -euo pipefail
need=()
dpkg -s libsystemd-dev >/dev/null 2>&1 || need+=(libsystemd-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
command -v make >/dev/null 2>&1 || need+=(make)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
[ -x /usr/bin/kill ] || need+=(procps)
command -v systemd-socket-activate >/dev/null 2>&1 || need+=(systemd)
# The benchmark's floor and a load test are small C programs: the toolchain's clang does, else gcc.
command -v cc >/dev/null 2>&1 || command -v clang >/dev/null 2>&1 || need+=(gcc)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
# With --tests, what only the tests need: the guest test boots a Debian root made by debootstrap under qemu, from a
# disk image made by mkfs.ext4 -d; the engine tests write models with the gguf package.
tests=${1:-}
if [ "$tests" = --tests ]; then
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
  # The fleet tests start a PostgreSQL server of their own (initdb, pg_ctl) and use psql.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
  # The fleet's TLS test makes a certificate authority and a server certificate of its own.
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
fi
# The test suite renders the installed man page.
command -v man >/dev/null 2>&1 || need+=(man-db)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# qemu without its recommended desktop front ends: the guest runs headless on a serial console.
if [ "$tests" = --tests ] && ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi
python3 -c 'import varlink, pytest' 2>/dev/null || python3 -m pip install -q varlink pytest
if [ "$tests" = --tests ]; then
  python3 -c 'import gguf, numpy' 2>/dev/null || python3 -m pip install -q gguf==0.19.0 numpy
fi
