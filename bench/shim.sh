#!/usr/bin/env bash
# The shim's own cost, JIT (framework-dependent) against native AOT, both published from this tree in the same run:
#   - the wall time of one `start` and one `delete` invocation, made the way containerd makes them: the binary run
#     directly with containerd's flags, in a bundle holding a config.json and a `log` FIFO that something reads, the
#     environment containerd passes (TTRPC_ADDRESS, the runtime configuration). `start` includes what containerd
#     waits for: the daemon spawned and its socket accepting. `delete` runs after the daemon is gone, as containerd
#     runs it after Shutdown. Timed from exec to exit, so it is the process's cost and nothing of containerd's;
#   - the shim's PSS (guest RAM mappings excluded, as bench/e2e.sh) with one microVM running one `sleep`
#     container, then with SHIM_BENCH_VMS (default 10) such VMs (one shim each), through a private containerd
#     ($FC_CONTAINERD_BIN); guests of 128 MiB with 1 vCPU.
# Prints medians over SHIM_BENCH_RUNS runs (default 5) after one warm-up invocation of each kind, and native/JIT ratios.
# SHIM_BENCH_JIT and SHIM_BENCH_NATIVE may name already published shims (the binary) instead of publishing them.
# Run as root, one benchmark at a time; leaves nothing running.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
runs="${SHIM_BENCH_RUNS:-5}"
vms="${SHIM_BENCH_VMS:-10}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# shellcheck source=../scripts/lib/private-containerd
. scripts/lib/private-containerd
# shellcheck source=proc-memory.sh
. bench/proc-memory.sh
dir=/var/lib/firecracker-containerd/bench-shim
reader=""
cleanup() {
    fc_containerd_stop
    [ -z "$reader" ] || kill "$reader" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

fc_build_artifacts "$repo"
native="${SHIM_BENCH_NATIVE:-$repo/artifacts/shim/containerd-shim-aws-firecracker}"
jit="${SHIM_BENCH_JIT:-}"
if [ -z "$jit" ]; then
    printf '\n\033[1m== %s\033[0m\n' "building the same shim framework-dependent (JIT) for comparison" >&2
    # A build (not a publish) of the project is the JIT shim: the apphost beside its assemblies, as published before.
    dotnet build src/FirecrackerContainerd.Runtime -c Release -nologo -v:q -clp:NoSummary >&2
    jit="$repo/src/FirecrackerContainerd.Runtime/bin/Release/net10.0/containerd-shim-aws-firecracker"
fi
echo "JIT shim: $jit ($(du -sh "$(dirname "$jit")" | cut -f1) with its assemblies); native shim: $native ($(du -shL "$native" | cut -f1))" >&2

rm -rf "$dir"
mkdir -p "$dir"
cat > "$dir/runtime.json" <<JSON
{
  "kernel_image_path": "$fc_image/vmlinux",
  "initrd_path": "$fc_image/initrd.img",
  "shim_base_dir": "$dir/vms"
}
JSON

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
elapsed() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f\n", e - s }'; }

# invocations KIND SHIM: one warm-up and $runs timed `start` and `delete` pairs; appends the seconds to
# $dir/KIND-start.txt and $dir/KIND-delete.txt.
invocations() {
    local kind="$1" shim="$2" i id bundle address daemon start end
    local flags=(-namespace bench -address "$dir/containerd.sock" -publish-binary "$fc_containerd_bin/containerd")
    : > "$dir/$kind-start.txt"
    : > "$dir/$kind-delete.txt"
    for i in $(seq 0 "$runs"); do
        id="shim-bench-$kind-$i"
        bundle="$dir/bundles/$id"
        mkdir -p "$bundle"
        echo '{"ociVersion":"1.0.2","annotations":{}}' > "$bundle/config.json"
        mkfifo "$bundle/log"
        cat "$bundle/log" > "$bundle/log.txt" &
        reader=$!
        start=$EPOCHREALTIME
        address="$(cd "$bundle" && TTRPC_ADDRESS="$dir/containerd.sock.ttrpc" FIRECRACKER_CONTAINERD_RUNTIME_CONFIG="$dir/runtime.json" \
            "$shim" "${flags[@]}" -id "$id" start)"
        end=$EPOCHREALTIME
        [ "$i" = 0 ] || elapsed "$start" "$end" >> "$dir/$kind-start.txt"
        # containerd's Shutdown ends the daemon before it runs delete; SIGTERM does the same here.
        daemon="$(pgrep -f -- "-socket $address\$" || true)"
        [ -n "$daemon" ] || { echo "$kind: no daemon serves $address after start" >&2; return 1; }
        kill -TERM "$daemon"
        while kill -0 "$daemon" 2>/dev/null; do sleep 0.05; done
        start=$EPOCHREALTIME
        (cd "$bundle" && TTRPC_ADDRESS="$dir/containerd.sock.ttrpc" FIRECRACKER_CONTAINERD_RUNTIME_CONFIG="$dir/runtime.json" \
            "$shim" "${flags[@]}" -id "$id" -bundle "$bundle" delete > /dev/null)
        end=$EPOCHREALTIME
        [ "$i" = 0 ] || elapsed "$start" "$end" >> "$dir/$kind-delete.txt"
        wait "$reader" 2>/dev/null || true
        reader=""
    done
    echo "$kind: start $(median < "$dir/$kind-start.txt") s, delete $(median < "$dir/$kind-delete.txt") s (medians of $runs)" >&2
}

# shims_pss_kib: the summed PSS of every shim of the private containerd, a median of five samples a second apart
# (a shim's heap moves with its GC).
shims_pss_kib() {
    local _ pid total
    for _ in 1 2 3 4 5; do
        total=0
        for pid in $(fc_shim_pids); do total=$(( total + $(pss_kib "$pid") )); done
        echo "$total"
        sleep 1
    done | median | cut -d. -f1
}

# vm_memory KIND SHIM: the shims' PSS with one VM, then with $vms, into $dir/KIND-memory.txt as "ONE ALL COUNT".
vm_memory() {
    local kind="$1" shim="$2" i one all count pids=() failed=0
    FC_VM_VCPUS=1 FC_VM_MEM_MIB=128 fc_containerd_start "$dir/containerd-$kind" bench "$shim"
    fc_import_busybox docker.io/library/fc-bench-busybox:latest
    run_vm() {
        timeout 600 "$fc_containerd_bin/ctr" --address "$fc_containerd_dir/containerd.sock" -n bench run -d --snapshotter native \
            --runtime aws.firecracker --annotation "aws.firecracker.vm.id=$kind-$1" \
            docker.io/library/fc-bench-busybox:latest "$kind-sleeper-$1" sleep 3600 > /dev/null 2>> "$fc_containerd_dir/ctr-errors.log"
    }
    run_vm 1 || { echo "$kind: the first VM did not start" >&2; tail -n 5 "$fc_containerd_dir/ctr-errors.log" >&2; return 1; }
    sleep 2
    one="$(shims_pss_kib)"
    echo "$kind: one VM, shim PSS $one KiB" >&2
    for i in $(seq 2 "$vms"); do run_vm "$i" & pids+=($!); done
    for i in "${pids[@]}"; do wait "$i" || failed=$(( failed + 1 )); done
    [ "$failed" = 0 ] || echo "$kind: $failed of $(( vms - 1 )) further VMs failed to start" >&2
    sleep 2
    count="$(fc_shim_pids | wc -l)"
    all="$(shims_pss_kib)"
    echo "$kind: $count shims, summed PSS $all KiB" >&2
    echo "$one $all $count" > "$dir/$kind-memory.txt"
    fc_containerd_stop
}

printf '\n\033[1m== %s\033[0m\n' "start and delete invocations ($runs each after a warm-up)" >&2
invocations jit "$jit"
invocations native "$native"
printf '\n\033[1m== %s\033[0m\n' "shim PSS with one and with $vms microVMs (128 MiB, 1 vCPU), containerd $fc_containerd_version" >&2
vm_memory jit "$jit"
vm_memory native "$native"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2fx\n", a / b }'; }
read -r jit_one jit_all jit_count < "$dir/jit-memory.txt"
read -r native_one native_all native_count < "$dir/native-memory.txt"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f\n", k / 1024 }'; }
per_vm() { awk -v k="$1" -v n="$2" 'BEGIN { if (n == 0) print "n/a"; else printf "%.1f\n", k / 1024 / n }'; }
row() { printf '  %-40s %9s %9s   %s\n' "$1" "$2" "$3" "$(ratio "$3" "$2")"; }

echo
echo "shim: JIT vs native AOT, same sources, containerd $fc_containerd_version ($fc_containerd_bin)"
printf '  %-40s %9s %9s   %s\n' "" "JIT" "native" "native/JIT"
row "start invocation, median of $runs (s)" "$(median < "$dir/jit-start.txt")" "$(median < "$dir/native-start.txt")"
row "delete invocation, median of $runs (s)" "$(median < "$dir/jit-delete.txt")" "$(median < "$dir/native-delete.txt")"
row "shim PSS, 1 VM (MiB)" "$(mib "$jit_one")" "$(mib "$native_one")"
row "shim PSS per VM, $vms VMs (MiB)" "$(per_vm "$jit_all" "$jit_count")" "$(per_vm "$native_all" "$native_count")"
row "shims' PSS in all, $vms VMs (MiB)" "$(mib "$jit_all")" "$(mib "$native_all")"
[ "$jit_count" = "$vms" ] && [ "$native_count" = "$vms" ]
