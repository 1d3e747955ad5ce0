#!/bin/bash
# Runs inside the Debian guest, as root, under systemd as PID 1: installs the project's package as an operator would
# and checks the units for real. Each check writes one line, `PASS name: detail` or `FAIL name: detail`, to
# $out/checks.txt; the last line is `END`. The host reads only that file (qemu's exit code says nothing).
set -u
payload=/mnt/payload
out=$payload/out
mkdir -p "$out"
exec > "$out/guest.log" 2>&1
checks=$out/checks.txt
: > "$checks"
socket=/run/edgeplan/io.edgeplan.Planner
plan_args=(plan --task mmlu-redux --deadline 8s --energy 200J --input 512 --json --socket "$socket")

pass() { echo "PASS $1: $2" >> "$checks"; echo "PASS $1: $2"; }
fail() { echo "FAIL $1: $2" | tr '\n' ' ' >> "$checks"; echo >> "$checks"; echo "FAIL $1: $2"; }
check() { # check NAME DETAIL COMMAND...: passes when the command succeeds
    local name=$1 detail=$2; shift 2
    if output=$("$@" 2>&1); then pass "$name" "$detail"; else fail "$name" "$detail; $(echo "$output" | tail -3)"; fi
}
prop() { systemctl show -P "$2" "$1"; }
wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.2; done
}
finish() {
    journalctl -b --no-pager -o short-monotonic > "$out/journal.txt" 2>&1
    echo END >> "$checks"
    sync
    exit 0   # the unit's SuccessAction powers the guest off
}
trap finish EXIT
trap 'exit 1' TERM INT

echo "guest: $(uname -r), $(systemctl --version | head -1)"
pass boot "systemd $(systemctl --version | head -1 | cut -d' ' -f2) is PID 1 ($(cat /proc/1/comm)), kernel $(uname -r)"

# The package, as an operator installs it.
deb=$(ls "$payload"/edgeplan_*.deb)
check package-installs "dpkg -i $(basename "$deb")" dpkg -i "$deb"
check group-created "edgeplan.sysusers created the callers' group" getent group edgeplan
useradd --no-create-home --groups edgeplan member

# Every unit the package ships loads and verifies.
units=$(dpkg -L edgeplan | grep -E '/systemd/system/[^/]+\.(service|socket|timer|path)$' || true)
bad=""
for unit in $units; do
    name=$(basename "$unit")
    [ "$(prop "$name" LoadState)" = loaded ] || bad="$bad $name:$(prop "$name" LoadState)"
    systemd-analyze verify "$unit" > "$out/verify-$name.txt" 2>&1 || bad="$bad $name:verify"
done
if [ -n "$units" ] && [ -z "$bad" ]; then pass units-load "$(echo $units | xargs -n1 basename | tr '\n' ' ')"; else fail units-load "${bad:-no units shipped}"; fi

check socket-enabled "systemctl enable --now edgeplan.socket" systemctl enable --now edgeplan.socket
if [ -S "$socket" ] && [ "$(prop edgeplan.service ActiveState)" != active ]; then
    pass socket-listening "$(stat -c '%A %U:%G' "$socket") $socket, the service not yet started"
else
    fail socket-listening "socket $(stat -c '%A %U:%G' "$socket" 2>&1), service $(prop edgeplan.service ActiveState)"
fi

# Socket activation: the first call starts the service, and a member of the group is served.
if reply=$(runuser -u member -- edgeplan "${plan_args[@]}" 2>&1) && echo "$reply" | grep -q '"model"'; then
    pass member-served "a member of group edgeplan planned $(echo "$reply" | grep -o '"model" *: *"[^"]*"' | head -1)"
else
    fail member-served "$(echo "$reply" | tail -3)"
fi
service_active() { [ "$(prop edgeplan.service ActiveState)" = active ]; }
if wait_for 20 service_active; then
    pass socket-activation "the first call started edgeplan.service (Type=notify, status: $(prop edgeplan.service StatusText))"
else
    fail socket-activation "edgeplan.service is $(prop edgeplan.service ActiveState)/$(prop edgeplan.service SubState), result $(prop edgeplan.service Result)"
fi
[ -n "$(prop edgeplan.service StatusText)" ] && pass notify-status "STATUS=$(prop edgeplan.service StatusText)" || fail notify-status "no STATUS= sent"
# The dynamic user, by its name (systemd's own lookup: the guest, like a minimal robot image, has no nss-systemd).
main_pid=$(prop edgeplan.service MainPID)
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$main_pid/status" 2>/dev/null)
gid=$(awk '/^Gid:/ { print $2 }' "/proc/$main_pid/status" 2>/dev/null)
name=$(basename "$(readlink "/run/systemd/dynamic-uid/direct:$uid" 2>/dev/null)" 2>/dev/null)
[ -z "$name" ] && name=$(cat "/run/systemd/dynamic-uid/$uid" 2>/dev/null)
ls -l /run/systemd/dynamic-uid/ > "$out/dynamic-uid.txt" 2>&1
if [ -n "$uid" ] && [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] && [ "$gid" = "$(getent group edgeplan | cut -d: -f3)" ] \
    && grep -q edgeplan-daemon "$out/dynamic-uid.txt"; then
    pass dynamic-user "runs as dynamic user edgeplan-daemon (uid $uid), group edgeplan (gid $gid)"
else
    fail dynamic-user "uid '$uid' gid '$gid' ($(tr '\n' ' ' < "$out/dynamic-uid.txt"))"
fi

if reply=$(runuser -u nobody -- edgeplan "${plan_args[@]}" 2>&1); then
    fail nobody-refused "nobody was served: $(echo "$reply" | head -c 200)"
elif echo "$reply" | grep -qi 'permission denied'; then
    pass nobody-refused "$(echo "$reply" | tail -1)"
else
    fail nobody-refused "refused, but not for want of permission: $(echo "$reply" | tail -1)"
fi

# Reload: a good policy is taken, a broken one is refused and the last good one stays.
policy_version() { edgeplan status --json --socket "$socket" | grep -o '"policyVersion" *: *"[^"]*"' | head -1; }
before=$(policy_version)
echo "# edited by the operator" >> /etc/edgeplan/policy.yaml
check reload-good "systemctl reload with a good policy" systemctl reload edgeplan.service
good=$(policy_version)
[ -n "$good" ] && [ "$good" != "$before" ] && pass reload-took "policy $before -> $good" || fail reload-took "policy $before -> $good"
cp /etc/edgeplan/policy.yaml /root/policy.good
printf 'kind: policy\nglobal:\n  latency_percentile: many\n' > /etc/edgeplan/policy.yaml
if ! service_active; then
    fail reload-broken-refused "the service is $(prop edgeplan.service ActiveState): nothing to reload"
elif systemctl reload edgeplan.service > "$out/reload-broken.txt" 2>&1; then
    fail reload-broken-refused "systemctl reload succeeded on a broken policy"
else
    pass reload-broken-refused "systemctl reload failed: $(journalctl -u edgeplan.service -n 20 --no-pager | grep -m1 -o 'latency_percentile.*' | head -c 160)"
fi
after=$(policy_version)
if [ "$(prop edgeplan.service ActiveState)" = active ] && [ "$after" = "$good" ] && runuser -u member -- edgeplan "${plan_args[@]}" > /dev/null 2>&1; then
    pass last-good-policy-kept "still active, serving with $after"
else
    fail last-good-policy-kept "state $(prop edgeplan.service ActiveState), policy $after (want $good)"
fi
cp /root/policy.good /etc/edgeplan/policy.yaml

# The watchdog: a whole period passes without a restart.
pid=$(prop edgeplan.service MainPID)
period_us=$(prop edgeplan.service WatchdogUSec)
sleep 12
if [ "$pid" != 0 ] && [ "$period_us" != infinity ] && [ "$(prop edgeplan.service MainPID)" = "$pid" ] \
    && [ "$(prop edgeplan.service NRestarts)" = 0 ]; then
    pass watchdog-quiet "WatchdogSec=$period_us, 12 s later the same process $pid, 0 restarts"
else
    fail watchdog-quiet "pid $pid -> $(prop edgeplan.service MainPID), restarts $(prop edgeplan.service NRestarts)"
fi

# SIGKILL: systemd restarts the service, the socket stays, a member is served again.
inode=$(stat -c %i "$socket" 2>/dev/null)
# (kill -9 0 would kill this script's own process group: only a real main process is killed.)
[ "$pid" -gt 0 ] && kill -9 "$pid"
restarted() { [ "$(prop edgeplan.service NRestarts)" = 1 ] && service_active; }
if wait_for 20 restarted && [ -S "$socket" ] && [ "$(stat -c %i "$socket")" = "$inode" ] \
    && reply=$(runuser -u member -- edgeplan "${plan_args[@]}" 2>&1); then
    pass restart-after-kill "pid $pid killed; restarted as $(prop edgeplan.service MainPID), the socket (inode $inode) kept"
else
    fail restart-after-kill "restarts $(prop edgeplan.service NRestarts), state $(prop edgeplan.service ActiveState), socket inode $(stat -c %i "$socket" 2>&1) (was $inode); ${reply:-}"
fi

# The journal: decisions carry their fields, and the catalog fills every placeholder.
journalctl --sync 2>/dev/null || true
decision=$(journalctl -o export --no-pager MESSAGE_ID=6f1c5b2a9e8d4c37a1b0f2e3d4c5b6a7 -n 1)
missing=""
for field in EDGEPLAN_TASK EDGEPLAN_MODEL EDGEPLAN_QUANT EDGEPLAN_MODE EDGEPLAN_PARALLEL EDGEPLAN_DEADLINE_MS \
             EDGEPLAN_PRED_LATENCY_TAIL_MS EDGEPLAN_PRED_ENERGY_TAIL_J EDGEPLAN_PERCENTILE EDGEPLAN_PRED_ACCURACY \
             EDGEPLAN_ACCURACY_SOURCE EDGEPLAN_PROFILE_VERSION EDGEPLAN_POLICY_VERSION CODE_FILE CODE_LINE CODE_FUNC; do
    echo "$decision" | grep -q "^$field=" || missing="$missing $field"
done
if [ -n "$decision" ] && [ -z "$missing" ]; then
    pass decision-fields "$(echo "$decision" | grep -E '^EDGEPLAN_(TASK|MODEL|PRED_LATENCY_TAIL_MS|PERCENTILE)=' | tr '\n' ' ')"
else
    fail decision-fields "missing:${missing:- the whole entry}"
fi
journalctl -x -u edgeplan.service --no-pager > "$out/journal-x.txt" 2>&1
explained=$(grep -c 'EdgePlan chose a configuration' "$out/journal-x.txt")
left=$(grep -oE '@[A-Za-z0-9_]+@' "$out/journal-x.txt" | sort -u | tr '\n' ' ')
if [ "$explained" -gt 0 ] && [ -z "$left" ]; then
    pass catalog-filled "journalctl -x explains $explained entries, no placeholder left"
else
    fail catalog-filled "explained $explained, left: $left"
fi
noise=$(journalctl -u edgeplan.service --no-pager | grep -c 'Failed to set thread priority')
[ "$noise" = 0 ] && pass no-priority-noise "no 'Failed to set thread priority' lines" || fail no-priority-noise "$noise lines"

memory=$(prop edgeplan.service MemoryCurrent)
if [[ "$memory" =~ ^[0-9]+$ ]] && [ "$memory" -gt 0 ]; then
    pass memory "MemoryCurrent $((memory / 1024 / 1024)) MiB (MemoryMax $(prop edgeplan.service MemoryMax))"
else
    fail memory "MemoryCurrent '$memory'"
fi

systemd-analyze security edgeplan.service --no-pager > "$out/security.txt" 2>&1
exposure=$(grep -oE 'Overall exposure level for edgeplan.service: [0-9.]+' "$out/security.txt" | grep -oE '[0-9.]+$')
if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e <= 1.0) }'; then
    pass security "exposure $exposure, measured in place"
else
    fail security "exposure '${exposure}' ($(tail -1 "$out/security.txt"))"
fi

# Stop: the service drains and exits, and the socket file is removed.
systemctl stop edgeplan.socket edgeplan.service
if [ ! -e "$socket" ] && [ "$(prop edgeplan.service ActiveState)" = inactive ] && [ "$(prop edgeplan.service Result)" = success ]; then
    pass stop-removes-socket "service $(prop edgeplan.service ActiveState) ($(prop edgeplan.service Result)), $socket gone"
else
    fail stop-removes-socket "service $(prop edgeplan.service ActiveState)/$(prop edgeplan.service Result), socket $(ls -l "$socket" 2>&1)"
fi
