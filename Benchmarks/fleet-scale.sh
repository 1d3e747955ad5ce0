#!/usr/bin/env bash
# The fleet at scale: a PostgreSQL of its own (initdb, pg_ctl, a Unix socket) in a temporary directory, then
# FleetBenchmark at growing sizes: robots x runs each, uploaded through the sync service's upload, then aggregated.
# Usage: Benchmarks/fleet-scale.sh [SIZES...]   (each ROBOTSxRUNS; default: 100x10000 1000x1000 1000x10000)
# Each robot's rows are spread over MONTHS months up to now (default 12), and the aggregate is timed over all of
# them and over the last 30 days.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100x10000 1000x1000 1000x10000)
configuration=${CONFIGURATION:-release}
swift build -c "$configuration" --product FleetBenchmark >/dev/null
bench=".build/$configuration/FleetBenchmark"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/edgeplan-fleet-scale.XXXXXX)
mkdir -p "$dir/sock"
echo owner-secret > "$dir/owner-password"
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
port=$((55000 + $$ % 1000))
cleanup() { as_server "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
as_server "$bin/initdb" -D "$dir/data" -U fleet_owner --auth-local=scram-sha-256 --pwfile="$dir/owner-password" >/dev/null
as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -o "-k $dir/sock -c listen_addresses='' -p $port -c max_connections=100" -w start >/dev/null
PGPASSWORD=owner-secret psql -h "$dir/sock" -p "$port" -U fleet_owner -d postgres -qc "CREATE DATABASE edgeplan_fleet"
for size in "${sizes[@]}"; do
  robots=${size%x*}
  runs=${size#*x}
  PGPASSWORD=owner-secret psql -h "$dir/sock" -p "$port" -U fleet_owner -d edgeplan_fleet -qc \
    "DO \$\$ BEGIN IF to_regclass('runs') IS NOT NULL THEN TRUNCATE runs, outcomes, robots, fleet_versions CASCADE; END IF; END \$\$" 2>/dev/null || true
  "$bench" "$dir/sock" "$port" fleet_owner "$dir/owner-password" "$robots" "$runs" 8 "r$robots-$runs" "${MONTHS:-12}"
  PGPASSWORD=owner-secret psql -h "$dir/sock" -p "$port" -U fleet_owner -d edgeplan_fleet -Atc \
    "SELECT 'database size ' || pg_size_pretty(pg_database_size('edgeplan_fleet')) || ', runs with indexes ' || pg_size_pretty(sum(pg_total_relation_size(inhrelid))) || ' in ' || count(*) || ' partitions' FROM pg_inherits WHERE inhparent = 'runs'::regclass"
done
