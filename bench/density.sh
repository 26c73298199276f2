#!/usr/bin/env bash
# Density through a private containerd: N microVMs (DENSITY_VMS, default 50; DENSITY_MEM_MIB guests, default 128 MiB,
# DENSITY_VCPUS vCPUs, default 1) started at once, each running a sleeping container, then one `ctr task exec` into
# each. The baseline, in the same run: the same N containers with runc. Prints the time for all N to come up, exec
# p50 and p99, host memory per VM (the fall in MemAvailable divided by N, and the PSS of shim plus VMM with guest RAM
# left out) and the idle CPU per VM over 10 s (the CPU time of every shim and VMM). Leaves nothing running.
# The containerd is the one in $FC_CONTAINERD_BIN (scripts/lib/private-containerd). Run as root, alone.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
n="${DENSITY_VMS:-50}"
mem_mib="${DENSITY_MEM_MIB:-128}"
vcpus="${DENSITY_VCPUS:-1}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# shellcheck source=../scripts/lib/private-containerd
. scripts/lib/private-containerd
# shellcheck source=proc-memory.sh
. bench/proc-memory.sh
trap fc_containerd_stop EXIT
trap 'exit 130' INT TERM HUP
fc_build_artifacts "$repo"
dir=/var/lib/firecracker-containerd/density
FC_VM_VCPUS="$vcpus" FC_VM_MEM_MIB="$mem_mib" fc_containerd_start "$dir" density
image=docker.io/library/fc-density-busybox:latest
fc_import_busybox "$image"
errors="$dir/ctr-errors.log"
: > "$errors"
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
# ctr_ SECONDS ARGS...: ctr against this containerd, bounded.
ctr_() { local seconds="$1"; shift; timeout "$seconds" "$fc_containerd_bin/ctr" --address "$dir/containerd.sock" -n density "$@"; }

# start_all KIND RUNTIME: `ctr run -d` of N sleeping containers at once; prints the seconds until every ctr returned
# and writes the ids that came up to $dir/KIND-up.txt.
start_all() {
    local kind="$1" runtime="$2" i start
    : > "$dir/$kind-up.txt"
    start=$EPOCHREALTIME
    for i in $(seq 1 "$n"); do
        ( if ctr_ 900 run -d --runtime "$runtime" --snapshotter "$fc_snapshotter" "$image" "$kind-$i" sleep 3600 >/dev/null 2>>"$errors"; then
              echo "$kind-$i" >> "$dir/$kind-up.txt"
          else
              echo "$kind-$i: ctr run -d failed" >&2
          fi ) &
    done
    wait
    awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", e - s }'
}

# exec_all KIND: one `ctr task exec` of echo into each container that came up, one after the other; writes the
# seconds of each that answered to $dir/KIND-exec.txt.
exec_all() {
    local kind="$1" id start out
    : > "$dir/$kind-exec.txt"
    while read -r id; do
        start=$EPOCHREALTIME
        out="$(ctr_ 300 task exec --exec-id probe "$id" echo "alive-$id" </dev/null 2>>"$errors")" || { echo "$id: exec failed" >&2; continue; }
        [ "$out" = "alive-$id" ] || { echo "$id: exec printed '$out'" >&2; continue; }
        awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", e - s }' >> "$dir/$kind-exec.txt"
    done < "$dir/$kind-up.txt"
}

# remove_all KIND: kills and deletes every container of KIND.
remove_all() {
    local i
    for i in $(seq 1 "$n"); do
        ctr_ 20 task kill -s KILL "$1-$i" >/dev/null 2>&1 || true
    done
    for i in $(seq 1 "$n"); do
        ctr_ 60 task delete -f "$1-$i" >/dev/null 2>&1 || true
        ctr_ 20 container delete "$1-$i" >/dev/null 2>&1 || true
    done
}

# percentile FILE P: the P-th percentile (nearest rank) of the numbers in FILE, or n/a.
percentile() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } r = int((p * NR + 99) / 100); if (r < 1) r = 1; printf "%.3f\n", v[r] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.1fx\n", a / b }'; }

say "baseline: $n runc containers started at once, then an exec into each"
runc_up="$(start_all runc io.containerd.runc.v2)"
exec_all runc
remove_all runc
runc_ok="$(wc -l < "$dir/runc-exec.txt")"

sleep 3
available_before="$(mem_available_kib)"
say "$n microVMs ($vcpus vCPU, $mem_mib MiB) started at once, each with a sleeping container"
vm_up="$(start_all vm aws.firecracker)"
up_count="$(wc -l < "$dir/vm-up.txt")"
echo "$up_count of $n microVMs up after $vm_up s" >&2

# The shims of this containerd and their VMMs; settled for 10 s so that boot work is over.
sleep 10
shims="$(fc_shim_pids | tr '\n' ' ')"
# shellcheck disable=SC2086
vmms="$(fc_descendant_pids $shims | tr '\n' ' ')"
available_after="$(mem_available_kib)"
pss_total=0
# shellcheck disable=SC2086
for pid in $shims $vmms; do pss_total=$(( pss_total + $(pss_kib "$pid") )); done
# shellcheck disable=SC2086
shim_ticks_before="$(cpu_ticks $shims)"; vmm_ticks_before="$(cpu_ticks $vmms)"
sleep 10
# shellcheck disable=SC2086
shim_ticks_after="$(cpu_ticks $shims)"; vmm_ticks_after="$(cpu_ticks $vmms)"
ticks_before=$((shim_ticks_before + vmm_ticks_before)); ticks_after=$((shim_ticks_after + vmm_ticks_after))
hz="$(getconf CLK_TCK)"

say "an exec into each microVM's container"
exec_all vm
vm_ok="$(wc -l < "$dir/vm-exec.txt")"
remove_all vm

per_vm=$(( up_count > 0 ? up_count : 1 ))
memory="$(awk -v b="$available_before" -v a="$available_after" -v n="$per_vm" 'BEGIN { printf "%.0f", (b - a) / 1024 / n }')"
pss="$(awk -v t="$pss_total" -v n="$per_vm" 'BEGIN { printf "%.1f", t / 1024 / n }')"
cpu_percent() { awk -v t="$1" -v hz="$hz" -v n="$per_vm" 'BEGIN { printf "%.2f", t / hz / 10 / n * 100 }'; }
cpu="$(cpu_percent $((ticks_after - ticks_before)))"
shim_cpu="$(cpu_percent $((shim_ticks_after - shim_ticks_before)))"
vmm_cpu="$(cpu_percent $((vmm_ticks_after - vmm_ticks_before)))"
runc_p50="$(percentile "$dir/runc-exec.txt" 50)"; runc_p99="$(percentile "$dir/runc-exec.txt" 99)"
vm_p50="$(percentile "$dir/vm-exec.txt" 50)"; vm_p99="$(percentile "$dir/vm-exec.txt" 99)"

echo
echo "containerd $fc_containerd_version ($fc_containerd_bin); $n containers, microVMs of $vcpus vCPU and $mem_mib MiB"
printf '  %-34s %8s %10s %10s %10s\n' "" "up (s)" "answered" "exec p50" "exec p99"
printf '  %-34s %8s %10s %10s %10s\n' "runc (io.containerd.runc.v2)" "$runc_up" "$runc_ok/$n" "$runc_p50" "$runc_p99"
printf '  %-34s %8s %10s %10s %10s\n' "aws.firecracker, a microVM each" "$vm_up" "$vm_ok/$n" "$vm_p50" "$vm_p99"
printf '  %-34s %8s %10s %10s %10s\n' "ratio" "$(ratio "$vm_up" "$runc_up")" "" "$(ratio "$vm_p50" "$runc_p50")" "$(ratio "$vm_p99" "$runc_p99")"
echo "idle CPU per VM over 10 s: shim $shim_cpu%, VMM $vmm_cpu% of a core"
echo "density: $vm_ok/$n microVMs answered exec; up in $vm_up s; exec p50 $vm_p50 s p99 $vm_p99 s; host memory per VM $memory MiB (shim+VMM outside guest RAM $pss MiB); idle CPU per VM $cpu% of a core"
[ "$vm_ok" = "$n" ]
