#!/bin/bash
# Boots a Debian 12 guest under qemu with systemd as PID 1, installs the given EdgePlan package in it and runs
# guest-checks.sh there. The guest writes its results to OUTPUT/ (checks.txt, the journal, the security report);
# the serial console goes to OUTPUT/console.log.
#
# Usage: Tests/guest/boot-guest.sh PACKAGE.deb OUTPUT_DIRECTORY
#
# The guest's root file system is made once with debootstrap and kept in $EDGEPLAN_GUEST_CACHE (default
# /var/cache/edgeplan/guest), keyed by its package list. Each run writes the guest's own units into it and makes a
# fresh disk image from it with mkfs.ext4 -d (seconds, no mount or loop device), so nothing one boot changes is seen
# by the next. Needs root, debootstrap, qemu-system-x86 and e2fsprogs, and reaches Debian's archive only while
# making the root.
set -euo pipefail
deb=$(realpath "$1")
output=$(realpath -m "$2")
here=$(dirname "$(realpath "$0")")
cache=${EDGEPLAN_GUEST_CACHE:-/var/cache/edgeplan/guest}
mirror=${EDGEPLAN_GUEST_MIRROR:-http://deb.debian.org/debian}
boot_timeout=${EDGEPLAN_GUEST_TIMEOUT:-900}
# What the guest has besides a minimal Debian: systemd as init, the kernel, and the package's own dependencies
# (nothing more, so a dependency the package forgets to declare fails its start in the guest).
packages=systemd,systemd-sysv,udev,dbus,libsqlite3-0,libstdc++6,procps,kmod,linux-image-amd64
key=$(printf '%s\n' bookworm "$packages" | sha256sum | cut -c1-16)
root=$cache/bookworm-$key

make_root() {
    local work
    work=$(mktemp -d "$cache/debootstrap.XXXXXX")
    echo "making the guest's root (debootstrap bookworm: $packages)"
    if ! debootstrap --variant=minbase --include="$packages" bookworm "$work/root" "$mirror" > "$work/debootstrap.log" 2>&1; then
        tail -20 "$work/debootstrap.log"
        umount -R "$work/root/proc" "$work/root/sys" 2>/dev/null || true
        rm -rf "$work"
        return 1
    fi
    rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
    mv "$work/root" "$root"
    rm -rf "$work"
}

# What this test adds to a plain Debian: a 9p share at /mnt/payload that carries the checks in and the results out,
# and a unit that runs the checks once the system is up. (Ordered after the journal, not after multi-user.target:
# a target orders itself after the units it wants, so that would be a cycle.)
configure_root() {
    echo edgeplan-guest > "$root/etc/hostname"
    printf '/dev/vda / ext4 rw,relatime 0 1\n' > "$root/etc/fstab"
    mkdir -p "$root/mnt/payload" "$root/etc/systemd/system/multi-user.target.wants"
    cat > "$root/etc/systemd/system/mnt-payload.mount" <<'UNIT'
[Unit]
Description=Test payload from the host
[Mount]
What=payload
Where=/mnt/payload
Type=9p
Options=trans=virtio,version=9p2000.L,msize=1048576
UNIT
    cat > "$root/etc/systemd/system/guest-checks.service" <<'UNIT'
[Unit]
Description=EdgePlan guest checks
Requires=mnt-payload.mount
After=mnt-payload.mount systemd-journald.service systemd-user-sessions.service
# Whatever becomes of the checks, the guest powers off, and the host reads what they wrote.
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
TimeoutStartSec=15min
ExecStart=/bin/bash /mnt/payload/guest-checks.sh
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
UNIT
    ln -sf /etc/systemd/system/guest-checks.service "$root/etc/systemd/system/multi-user.target.wants/guest-checks.service"
    # No getty on the serial console and no clock sync to wait for: the guest exists to run the checks.
    ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
    ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
    ln -sf /dev/null "$root/etc/systemd/system/systemd-timesyncd.service"
}

mkdir -p "$cache"
started=$SECONDS
if [ ! -d "$root" ]; then
    make_root
    echo "guest root made in $((SECONDS - started)) s: $root"
else
    echo "guest root from the cache: $root"
fi
configure_root
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
payload=$(mktemp -d)
trap 'rm -rf "$payload"' EXIT
mkfs.ext4 -q -F -L guestroot -d "$root" "$payload/disk.img" 2G
mkdir -p "$payload/share"
cp "$deb" "$payload/share/"
cp "$here/guest-checks.sh" "$payload/share/"
mkdir -p "$payload/share/out" "$output"
booted=$SECONDS
# /dev/kvm may exist and still not work (a host that is itself a VM): software emulation always does.
timeout "$boot_timeout" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp 2 -m 1536 \
    -nographic -vga none -no-reboot \
    -kernel "$kernel" -initrd "$initrd" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1" \
    -drive "file=$payload/disk.img,format=raw,if=virtio" \
    -virtfs "local,path=$payload/share,mount_tag=payload,security_model=none,id=payload" \
    -nic none \
    < /dev/null > "$output/console.log" 2>&1 || echo "qemu ended with status $? (not trusted: the checks file decides)"
cp -r "$payload/share/out/." "$output/"
echo "guest run in $((SECONDS - booted)) s, $((SECONDS - started)) s in all"
