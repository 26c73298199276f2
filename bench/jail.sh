#!/usr/bin/env bash
# The jail's cost (docs/jail.md), jail off and on alternating in one run through one private containerd: the shim reads
# the runtime configuration per VM, so `jail.enabled` is rewritten before each VM. JAIL_BENCH_RUNS pairs (default 7),
# the order inside a pair alternating (off-on, on-off, ...) so that neither mode always follows the other.
#   VM start: `ctr run --rm --runtime aws.firecracker --snapshotter native IMAGE ID true`, end to end, and the runtime's
#             phase trace of that VM ("trace": true): VMM started, VMM started to agent answering, boot;
#   vsock:    JAIL_BENCH_MIB MiB (default 128) of a container's stdout through the vsock: `ctr task exec` of
#             `head -c N /dev/zero` into a running container, less the same exec of `head -c 0`, in one VM of each
#             mode (jailed: the fc-vhost-vsock process; unjailed: the device inside the shim);
#   memory:   PSS of the shim, QEMU and (jailed) fc-vhost-vsock of those two VMs, guest RAM excluded (bench/proc-memory.sh),
#             the median of five samples a second apart.
# JAIL_BENCH_HOGS=N (default 0) runs N busy loops in this script's cgroup while the VMs start: the CPU contention under
# which a cgroup's weight shows (a VM's cgroup competes with its parent's siblings as one entity).
# Prints medians (min-max), the median of the paired differences (on - off) and the ratio on / off, with the load average.
# The containerd is the one in $FC_CONTAINERD_BIN (scripts/lib/private-containerd). Run as root; leaves nothing running.
set -euo pipefail
trap 'echo "bench/jail.sh: a command failed at line $LINENO" >&2' ERR
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
runs="${JAIL_BENCH_RUNS:-7}"
hogs="${JAIL_BENCH_HOGS:-0}"
mib="${JAIL_BENCH_MIB:-128}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# shellcheck source=../scripts/lib/private-containerd
. scripts/lib/private-containerd
# shellcheck source=proc-memory.sh
. bench/proc-memory.sh
hog_pids=()
stop_hogs() { [ "${#hog_pids[@]}" = 0 ] || kill "${hog_pids[@]}" 2>/dev/null || true; hog_pids=(); }
# The VMs' cgroups go with them; their parent, the benchmark's own, goes at the end (rmdir leaves a busy one).
remove_cgroup_parent() { local c; for c in /sys/fs/cgroup/*/fc-jail-bench /sys/fs/cgroup/fc-jail-bench; do [ ! -d "$c" ] || rmdir "$c" 2>/dev/null || true; done; }
trap 'stop_hogs; fc_containerd_stop; remove_cgroup_parent' EXIT
trap 'exit 130' INT TERM HUP
fc_build_artifacts "$repo"
dir=/var/lib/firecracker-containerd/jail-bench
namespace=jailbench
FC_TRACE=true fc_containerd_start "$dir" "$namespace"
image=docker.io/library/fc-bench-busybox:latest
fc_import_busybox "$image"
errors="$dir/ctr-errors.log"
: > "$errors"
results="$dir/results"
mkdir -p "$results"
loads="$results/load.txt"
: > "$loads"

# A uid range and cgroup parent of the benchmark's own, so no test's jail mixes in.
cp "$dir/runtime.json" "$dir/runtime.base.json"
# set_jail true|false: the runtime configuration the next shim reads.
set_jail() {
    sed "s|^{\$|{\n  \"jail\": { \"enabled\": $1, \"uid_range\": { \"start\": 970000, \"count\": 64 }, \"chroot_base\": \"$dir/jail\", \"cgroup_parent\": \"fc-jail-bench\" },|" \
        "$dir/runtime.base.json" > "$dir/runtime.json.new"
    mv "$dir/runtime.json.new" "$dir/runtime.json"
}
mode_flag() { if [ "$1" = on ]; then echo true; else echo false; fi; }
load() { cut -d' ' -f1 /proc/loadavg; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# stats FILE: "median (min-max)" of a column of numbers.
stats() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f (%.1f-%.1f)\n", m, v[1], v[NR] }'; }
# paired OFF-FILE ON-FILE: the median of the line-by-line differences on - off, and the ratio of the medians.
paired() {
    local d r
    d="$(paste -d' ' "$1" "$2" | awk '{ print $2 - $1 }' | median)"
    r="$(awk -v a="$(median < "$2")" -v b="$(median < "$1")" 'BEGIN { if (b == 0 || a == "n/a" || b == "n/a") print "n/a"; else printf "%.2fx\n", a / b }')"
    printf '%+.1f   %s\n' "$d" "$r"
}

# vm_start MODE ID: one new VM with the jail MODE, timed end to end in ms into $results/start-MODE.txt.
vm_start() {
    local mode="$1" id="$2" start ms
    set_jail "$(mode_flag "$mode")"
    load >> "$loads"
    start=$EPOCHREALTIME
    if ! fcctr run --rm --snapshotter native --runtime aws.firecracker "$image" "$id" true >/dev/null 2>>"$errors"; then
        echo "FAILED: ctr run $id (jail $mode)" >&2; tail -n 5 "$errors" >&2; return 1
    fi
    ms="$(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f\n", (e - s) * 1000 }')"
    echo "$ms" >> "$results/start-$mode.txt"
    echo "$id $mode" >> "$results/ids.txt"
    echo "VM start, jail $mode ($id): $ms ms (load $(load))" >&2
}

printf '\n\033[1m== %s\033[0m\n' "VM start, jail off and on alternating ($runs pairs after a warm-up of each, $hogs busy loops beside)" >&2
for _ in $(seq 1 "$hogs"); do
    ( while :; do :; done ) &
    hog_pids+=($!)
done
: > "$results/ids.txt"
for mode in off on; do
    vm_start "$mode" "jb-warm-$mode"
done
rm -f "$results/start-off.txt" "$results/start-on.txt" "$results/ids.txt"
: > "$results/start-off.txt"; : > "$results/start-on.txt"; : > "$results/ids.txt"
for i in $(seq 1 "$runs"); do
    if [ $((i % 2)) = 1 ]; then order="off on"; else order="on off"; fi
    for mode in $order; do
        vm_start "$mode" "jb-start-$i-$mode"
    done
done

stop_hogs

# The phase trace of the timed VMs: "trace vm <id>: <phase> <ms> ms" in containerd's log, one file per mode and phase,
# in the order of the pairs.
phase_file() { echo "$results/phase-$1-$(tr ' /' '__' <<<"$2").txt"; }
phases=("VMM started" "VMM started to agent answering" "guest kernel to /init (guest clock)" "guest /init to agent serving (guest clock)" "boot")
# Where "VMM started" goes, from the shim's own log times: the VMM chosen ("QEMU accelerator" line) to QEMU's launch
# ("started VMM pid N: ... qemu-system...", after the jail's preparation and, jailed, the device process's start and its
# socket), and from that launch to QEMU answering on QMP ("QEMU started").
launch_phases=("VMM chosen to QEMU launched" "QEMU launched to QMP answering")
messages="$results/messages.txt"
awk '{ t = $0; sub(/^time="/, "", t); sub(/".*/, "", t); m = $0; if (!sub(/.* msg="/, "", m)) next; sub(/" [a-z_]+=.*$/, "", m)
       split(substr(t, 12), c, ":"); printf "%.3f %s\n", (c[1] * 3600 + c[2] * 60 + c[3]) * 1000, m }' "$dir/containerd.log" > "$messages"
for i in $(seq 1 "$runs"); do
    for mode in off on; do
        id="jb-start-$i-$mode"
        for phase in "${phases[@]}"; do
            awk -v want="trace vm $id: $phase " '{ msg = substr($0, index($0, " ") + 1) }
                index(msg, want) == 1 && substr(msg, length(want) + 1) ~ /^[0-9.]+ ms$/ && !done { print $(NF - 1); done = 1 }' \
                "$messages" >> "$(phase_file "$mode" "$phase")"
        done
        awk -v vm="vm $id: " '
            index($0, vm) == 0 { next }
            { msg = substr($0, index($0, " ") + 1) }
            index(msg, vm "QEMU accelerator") == 1 && !chosen { chosen = $1 }
            index(msg, vm "started VMM pid") == 1 && msg ~ /-- [^ ]*qemu-system|setpriv .*qemu-system/ && !launched { launched = $1 }
            index(msg, vm "QEMU started") == 1 && !up { up = $1 }
            END { if (chosen && launched && up) printf "%.1f %.1f\n", launched - chosen, up - launched }' "$messages" > "$results/launch-$id.txt"
        cut -d' ' -f1 "$results/launch-$id.txt" >> "$(phase_file "$mode" "${launch_phases[0]}")"
        cut -d' ' -f2 "$results/launch-$id.txt" >> "$(phase_file "$mode" "${launch_phases[1]}")"
    done
done

# Two VMs that stay, one per mode, each running `sleep`: the vsock throughput and the memory.
printf '\n\033[1m== %s\033[0m\n' "vsock throughput ($mib MiB of stdout per exec) and memory, one VM of each mode" >&2
for mode in off on; do
    set_jail "$(mode_flag "$mode")"
    fcctr run -d --snapshotter native --runtime aws.firecracker "$image" "jb-sleep-$mode" sleep 3600 >/dev/null 2>>"$errors" \
        || { echo "FAILED: ctr run -d jb-sleep-$mode" >&2; tail -n 5 "$errors" >&2; exit 1; }
done

# timed_exec TASK EXEC-ID BYTES: seconds of `ctr task exec` of `head -c BYTES /dev/zero`; fails unless every byte arrived.
timed_exec() {
    local start got
    start=$EPOCHREALTIME
    got="$(fcctr task exec --exec-id "$2" "$1" head -c "$3" /dev/zero 2>>"$errors" | wc -c)"
    [ "$got" = "$3" ] || { echo "FAILED: exec $2 in $1 delivered $got of $3 bytes" >&2; return 1; }
    awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", e - s }'
}

bytes=$((mib * 1024 * 1024))
: > "$results/vsock-off.txt"; : > "$results/vsock-on.txt"
for mode in off on; do timed_exec "jb-sleep-$mode" "warm-$mode" "$bytes" >/dev/null; done
for i in $(seq 1 "$runs"); do
    if [ $((i % 2)) = 1 ]; then order="off on"; else order="on off"; fi
    for mode in $order; do
        load >> "$loads"
        empty="$(timed_exec "jb-sleep-$mode" "empty-$i" 0)"
        full="$(timed_exec "jb-sleep-$mode" "full-$i" "$bytes")"
        rate="$(awk -v m="$mib" -v f="$full" -v e="$empty" 'BEGIN { printf "%.1f\n", m / (f - e) }')"
        echo "$rate" >> "$results/vsock-$mode.txt"
        echo "vsock, jail $mode: $mib MiB in $full s (an empty exec: $empty s): $rate MiB/s (load $(load))" >&2
    done
done

# The processes of VM jb-sleep-MODE: its shim (its command line names the id) and the shim's children by name.
shim_of() { { pgrep -f -- "containerd-shim-aws-firecracker .*-id jb-sleep-$1( |\$)" || true; } | head -n 1; }
child_of() { # SHIM NAME-PREFIX
    local pid
    for pid in $(ps -o pid= --ppid "$1"); do
        if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2"* ]]; then echo "$pid"; return 0; fi
    done
}
: > "$results/memory.txt"
for mode in off on; do
    shim="$(shim_of "$mode")"
    [ -n "$shim" ] || { echo "FAILED: no shim for jb-sleep-$mode" >&2; exit 1; }
    qemu="$(child_of "$shim" qemu)"
    device="$(child_of "$shim" fc-vhost-vsock)"
    echo "memory, jail $mode: shim $shim, QEMU ${qemu:-none}, device ${device:-none (in the shim)}" >&2
    : > "$results/mem-$mode.txt"
    for _ in 1 2 3 4 5; do
        echo "$(pss_kib "$shim") $(pss_kib "${qemu:-0}") $([ -n "$device" ] && pss_kib "$device" || echo 0)" >> "$results/mem-$mode.txt"
        sleep 1
    done
done
mem() { cut -d' ' -f"$2" "$results/mem-$1.txt" | median; }

echo
echo "containerd $fc_containerd_version ($fc_containerd_bin), QEMU ${FC_VM_VCPUS:-2} vCPUs ${FC_VM_MEM_MIB:-512} MiB, $runs pairs"
echo "load average (1 min) during the timed runs: $(stats "$loads"); busy loops beside the VM starts: $hogs"
printf '%-46s %24s %24s %14s %8s\n' "" "jail off" "jail on" "paired diff" "on/off"
row() { # LABEL OFF-FILE ON-FILE
    local p; p="$(paired "$2" "$3")"
    printf '%-46s %24s %24s %14s %8s\n' "$1" "$(stats "$2")" "$(stats "$3")" "${p%% *}" "${p##* }"
}
row "VM start, ctr run ... true (ms)" "$results/start-off.txt" "$results/start-on.txt"
for phase in "${phases[@]}"; do
    row "  trace: $phase (ms)" "$(phase_file off "$phase")" "$(phase_file on "$phase")"
    if [ "$phase" = "VMM started" ]; then
        for launch in "${launch_phases[@]}"; do
            row "    log: $launch (ms)" "$(phase_file off "$launch")" "$(phase_file on "$launch")"
        done
    fi
done
row "vsock, container stdout (MiB/s)" "$results/vsock-off.txt" "$results/vsock-on.txt"
echo "memory per VM, PSS in MiB, guest RAM excluded (median of 5 samples)"
awk -v s0="$(mem off 1)" -v q0="$(mem off 2)" -v s1="$(mem on 1)" -v q1="$(mem on 2)" -v d1="$(mem on 3)" 'BEGIN {
    printf "  %-44s %24.1f %24.1f\n", "shim", s0 / 1024, s1 / 1024
    printf "  %-44s %24.1f %24.1f\n", "QEMU", q0 / 1024, q1 / 1024
    printf "  %-44s %24s %24.1f\n", "fc-vhost-vsock", "(in the shim)", d1 / 1024
    printf "  %-44s %24.1f %24.1f %+14.1f %7.2fx\n", "total", (s0 + q0) / 1024, (s1 + q1 + d1) / 1024, (s1 + q1 + d1 - s0 - q0) / 1024, (s1 + q1 + d1) / (s0 + q0) }'
