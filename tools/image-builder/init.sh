#!/bin/busybox sh
# /init of the guest initramfs: brings up the minimum a container agent needs, then hands the VM to
# the agent (or to a command from the kernel command line) and powers the VM off when that ends.
# Kernel command line switches read here (documented in docs/guest-image.md):
#   fc.init=<path>          run this executable instead of the agent (no arguments)
#   fc.init64=<base64>      run this shell script (base64 so it survives kernel command-line parsing)
#   fc.debug=1              echo each step on the console; the agent traces its calls there too
#   fc.net=<mac>,[<ipv4>/<prefix>],[<gateway>]   configure the interface with that MAC (repeatable)
#   fc.dns=<ip>[,<ip>...]   nameservers for /etc/resolv.conf

export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=/root

log() { echo "fc-init: $*" > /dev/console; }
fail() { log "FATAL: $*"; poweroff -f; }

# Booted from a root drive, / is read-only. Stack a writable layer in memory over it (overlayfs, its upper on a tmpfs)
# and move into that, so the guest can write anywhere, as in an initramfs (drive mounts at any path, /etc, the
# containers' bundles), while its files are still read from the drive only as they are used. Nothing to log to yet.
# (busybox's test -w holds every file writable for root, read-only file system or not: a write is the test.)
if [ "$1" != overlaid ] && ! { : > /.fc-writable; } 2>/dev/null; then
    mount -t tmpfs -o mode=0755 tmpfs /tmp && mkdir -p /tmp/upper /tmp/work /tmp/root \
        && mount -t overlay overlay -o lowerdir=/,upperdir=/tmp/upper,workdir=/tmp/work /tmp/root \
        && mkdir -p /tmp/root/.ro && cd /tmp/root && pivot_root . .ro && exec chroot . /init overlaid
    poweroff -f
fi
# The drive's own mount tree (its /tmp holds the upper layer, which the overlay keeps) is of no use any more.
[ "$1" != overlaid ] || umount -l /.ro
rm -f /.fc-writable

mount -t proc proc /proc || fail "mount /proc"
# The agent reports it, so the host can trace how long the kernel took to get here.
FC_INIT_UPTIME="$(cut -d' ' -f1 /proc/uptime)"
export FC_INIT_UPTIME
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
# Booted from a root drive, init starts without standard input, output and error: the kernel opens them on
# /dev/console before it runs init, and the drive has no device nodes (the initramfs gets /dev/console from the kernel).
[ -t 1 ] || exec </dev/console >/dev/console 2>&1
log "start uptime=$FC_INIT_UPTIME"
mount -t sysfs sysfs /sys || fail "mount /sys"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,gid=5,mode=0620 devpts /dev/pts || fail "mount /dev/pts"
ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fail "mount /dev/shm"
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "mount /sys/fs/cgroup"
mount -t tmpfs -o mode=1777 tmpfs /tmp || fail "mount /tmp"
mount -t tmpfs -o mode=0755 tmpfs /run || fail "mount /run"
hostname fc-guest

# Modules are listed by the builder in dependency order; a module already built in is not listed.
while read -r module; do
    [ -n "$module" ] || continue
    insmod "/lib/modules/$module" || log "insmod $module failed"
done < /etc/fc-modules

debug=0
init_path=""
init_script=""
nets=""
dns=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        fc.init=*) init_path="${arg#fc.init=}" ;;
        fc.init64=*) init_script="${arg#fc.init64=}" ;;
        fc.debug=1) debug=1 ;;
        fc.net=*) nets="$nets ${arg#fc.net=}" ;;
        fc.dns=*) dns="${arg#fc.dns=}" ;;
    esac
done
[ "$debug" = 1 ] && log "modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"

# Network: the interface with each fc.net MAC gets its address and, where given, the default route.
# A failure is logged and the VM goes on: its containers may not need that network.
ip link set lo up || log "network: lo did not come up"
configure_net() {
    mac="$1" address="$2" gateway="$3" dev=""
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        for path in /sys/class/net/*; do
            [ "$(cat "$path/address" 2>/dev/null)" = "$mac" ] && dev="${path##*/}"
        done
        [ -n "$dev" ] && break
        sleep 0.2
    done
    [ -n "$dev" ] || { log "network: no interface has MAC $mac"; return 1; }
    ip link set dev "$dev" up || { log "network: $dev did not come up"; return 1; }
    if [ -n "$address" ]; then
        ip addr add "$address" dev "$dev" || { log "network: $dev: address $address refused"; return 1; }
    fi
    if [ -n "$gateway" ]; then
        ip route add default via "$gateway" dev "$dev" || { log "network: $dev: default route via $gateway refused"; return 1; }
    fi
    [ "$debug" = 1 ] && log "network: $dev $mac ${address:-no address} ${gateway:+via $gateway}"
    return 0
}
for net in $nets; do
    # mac,address,gateway (address and gateway may be empty)
    mac="${net%%,*}" rest="${net#*,}"
    configure_net "$mac" "${rest%%,*}" "${rest#*,}"
done
if [ -n "$dns" ]; then
    : > /etc/resolv.conf
    for server in $(echo "$dns" | tr ',' ' '); do echo "nameserver $server" >> /etc/resolv.conf; done
fi

log "ready uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -n "$init_script" ]; then
    echo "$init_script" | base64 -d > /run/fc-init.sh || fail "fc.init64 is not valid base64"
    sh /run/fc-init.sh
    log "fc.init64 exited with $?"
elif [ -n "$init_path" ]; then
    "$init_path"
    log "$init_path exited with $?"
elif [ -x /sbin/fc-agent ]; then
    # Not exec: the agent must not be PID 1. The .NET runtime reaps every child of PID 1 on SIGCHLD,
    # which would take container exit statuses away from the agent's own reaper. The agent is a child
    # subreaper, so orphans from its containers still go to it, not to this shell.
    # The agent is the VM's only way to its containers: at -999 the OOM killer takes any other process first.
    # It spawns its children at the default 0, so containers and execs do not inherit the protection.
    agent_args=
    if [ "$debug" = 1 ]; then agent_args=--trace; fi
    (echo -999 > /proc/self/oom_score_adj || log "cannot protect fc-agent from the OOM killer"; exec /sbin/fc-agent $agent_args)
    log "fc-agent exited with $?"
else
    log "no /sbin/fc-agent and no fc.init= on the kernel command line"
fi
sync
poweroff -f
