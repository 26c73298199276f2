#!/usr/bin/env bash
# End to end through a private containerd: `ctr run` of a container that echoes a marker, timed from the
# start of ctr to the marker on its stdout and to ctr's exit, in a new microVM, as a second container in a
# running microVM, and with runc (the baseline, same containerd, same image). `ctr task exec` of the same
# echo into a running container, in a microVM and with runc. Then the host memory of one VM running one
# `sleep` container: PSS of the shim (it serves the vsock device) and of QEMU, guest RAM excluded.
# Then a big image (E2E_BENCH_BIG_MIB, default 300 MiB, in 3000 files) against the small one, as a second container
# in a running microVM for each snapshotter this containerd has (native: copied; blockfile, erofs: attached) and with runc;
# E2E_BENCH_BIG_MIB=0 leaves it out.
# Prints medians over E2E_BENCH_RUNS runs (default 5) after one warm-up run of each kind, then the medians of the
# runtime's phase trace (its "trace" switch, on here) for a new microVM and for a second container in a running one.
# The containerd is the one in $FC_CONTAINERD_BIN (scripts/lib/private-containerd); its version heads the summary.
# Run as root, one benchmark at a time; leaves nothing running.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
runs="${E2E_BENCH_RUNS:-5}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# shellcheck source=../scripts/lib/private-containerd
. scripts/lib/private-containerd
# shellcheck source=proc-memory.sh
. bench/proc-memory.sh
trap fc_containerd_stop EXIT
trap 'exit 130' INT TERM HUP
fc_build_artifacts "$repo"
dir=/var/lib/firecracker-containerd/bench
FC_TRACE=true fc_containerd_start "$dir" bench
image=docker.io/library/fc-bench-busybox:latest
fc_import_busybox "$image"
errors="$dir/ctr-errors.log"
: > "$errors"

vm_id=benchvm
sleeper=e2e-sleeper
big_mib="${E2E_BENCH_BIG_MIB:-300}"
# What timed_run runs: the image and the snapshotter (the big-image section changes them).
run_image="$image"
run_snapshotter=native

# timed_run ID [CTR-RUN-FLAGS...]: runs `ctr run --rm FLAGS IMAGE ID echo MARKER` and prints
# "FIRST TOTAL" in seconds (start to marker line, start to exit); returns ctr's status.
timed_run() {
    local id="$1"; shift
    local marker="e2e-bench-marker-$id" start line first="" total="" status=""
    start=$EPOCHREALTIME
    while IFS= read -r line; do
        case "$line" in
            "$marker") first=$EPOCHREALTIME ;;
            "ctr-exit "*) total=$EPOCHREALTIME; status="${line#ctr-exit }" ;;
            *) echo "$id: unexpected output: $line" >&2 ;;
        esac
    done < <(fcctr run --rm --snapshotter "$run_snapshotter" "$@" "$run_image" "$id" echo "$marker" 2>>"$errors"; echo "ctr-exit $?")
    if [ "$status" != 0 ] || [ -z "$first" ]; then
        echo "$id: ctr run exited with status ${status:-?}, marker ${first:+seen}${first:-not seen}" >&2
        return 1
    fi
    awk -v s="$start" -v f="$first" -v t="$total" 'BEGIN { printf "%.3f %.3f\n", f - s, t - s }'
}

# timed_exec TASK EXEC-ID: `ctr task exec` of `echo MARKER` in TASK; prints the seconds to ctr's exit and
# fails unless ctr succeeded and printed exactly the marker.
timed_exec() {
    local task="$1" id="$2" marker="e2e-bench-exec-$2" start out
    start=$EPOCHREALTIME
    out="$(fcctr task exec --exec-id "$id" "$task" echo "$marker" 2>>"$errors")" || { echo "$id: ctr task exec failed" >&2; return 1; }
    [ "$out" = "$marker" ] || { echo "$id: ctr task exec printed '$out'" >&2; return 1; }
    awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", e - s }'
}

# measure_exec KIND TASK: one warm-up and $runs timed execs into $dir/KIND.txt; fails on the first failed one.
measure_exec() {
    local kind="$1" task="$2" i t
    : > "$dir/$kind.txt"
    for i in $(seq 0 "$runs"); do
        t="$(timed_exec "$task" "$kind-$i")" || return 1
        if [ "$i" = 0 ]; then
            echo "$kind warm-up: $t s" >&2
        else
            echo "$kind run $i/$runs: $t s" >&2
            echo "$t" >> "$dir/$kind.txt"
        fi
    done
}

# remove_container ID: kills and deletes a detached container's task and the container, whatever state they are in.
remove_container() {
    timeout 20 "$fc_containerd_bin/ctr" --address "$dir/containerd.sock" -n bench task kill -s KILL "$1" >/dev/null 2>&1 || true
    timeout 30 "$fc_containerd_bin/ctr" --address "$dir/containerd.sock" -n bench task delete -f "$1" >/dev/null 2>&1 || true
    timeout 10 "$fc_containerd_bin/ctr" --address "$dir/containerd.sock" -n bench container delete "$1" >/dev/null 2>&1 || true
}

col() { cut -d' ' -f"$2" "$dir/$1.txt" | median; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# measure KIND [CTR-RUN-FLAGS...]: one warm-up and $runs timed runs into $dir/KIND.txt; fails on the first failed run.
measure() {
    local kind="$1"; shift
    local i result
    : > "$dir/$kind.txt"
    for i in $(seq 0 "$runs"); do
        result="$(timed_run "e2e-$kind-$i" "$@")" || return 1
        if [ "$i" = 0 ]; then
            echo "$kind warm-up: first line $(cut -d' ' -f1 <<<"$result") s, exit $(cut -d' ' -f2 <<<"$result") s" >&2
        else
            echo "$kind run $i/$runs: first line $(cut -d' ' -f1 <<<"$result") s, exit $(cut -d' ' -f2 <<<"$result") s" >&2
            echo "$result" >> "$dir/$kind.txt"
        fi
    done
}

show_failure() {
    local what="$1"
    echo "FAILED: $what" >&2
    echo "-- ctr stderr (last lines):" >&2
    tail -n 20 "$errors" >&2
    echo "-- containerd log (last lines naming an error):" >&2
    grep -iE 'error|fail|warn' "$dir/containerd.log" | tail -n 20 >&2 || true
}

printf '\n\033[1m== %s\033[0m\n' "ctr run: runc, then a new microVM per container ($runs runs each after a warm-up)" >&2
measure runc --runtime io.containerd.runc.v2 || { show_failure "ctr run with runc"; exit 1; }
newvm_ok=1
measure newvm --runtime aws.firecracker || { newvm_ok=0; show_failure "ctr run --runtime aws.firecracker (new VM)"; }

printf '\n\033[1m== %s\033[0m\n' "ctr task exec into a running runc container" >&2
runc_sleeper=e2e-runc-sleeper
exec_runc_ok=0
if fcctr run -d --snapshotter native --runtime io.containerd.runc.v2 "$image" "$runc_sleeper" sleep 600 >/dev/null 2>>"$errors"; then
    measure_exec exec-runc "$runc_sleeper" && exec_runc_ok=1 || show_failure "ctr task exec into $runc_sleeper (runc)"
    remove_container "$runc_sleeper"
else
    show_failure "ctr run -d --runtime io.containerd.runc.v2 $runc_sleeper sleep 600"
fi

printf '\n\033[1m== %s\033[0m\n' "a second container in a running microVM (vm id $vm_id)" >&2
second_ok=0
exec_vm_ok=0
memory=""
if fcctr run -d --snapshotter native --runtime aws.firecracker --annotation "aws.firecracker.vm.id=$vm_id" \
        "$image" "$sleeper" sleep 600 >/dev/null 2>>"$errors"; then
    # The VMM runs in the VM directory; its parent is the shim.
    qemu=""
    for _ in $(seq 50); do
        # shellcheck disable=SC2046
        for pid in $(fc_descendant_pids $(fc_shim_pids)); do
            if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir/vms/bench#$vm_id" ] &&
                    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == qemu* ]]; then
                qemu="$pid"
            fi
        done
        [ -n "$qemu" ] && break
        sleep 0.2
    done
    if [ -n "$qemu" ]; then
        shim="$(ps -o ppid= -p "$qemu" | tr -d ' ')"
        sleep 2 # let the idle guest and the shim settle after the container started
        # Median of five samples a second apart: the shim's heap moves with its GC.
        : > "$dir/memory.txt"
        for _ in 1 2 3 4 5; do
            echo "$(pss_kib "$shim") $(pss_kib "$qemu") $(( $(guest_ram_kib "$shim") + $(guest_ram_kib "$qemu") ))" >> "$dir/memory.txt"
            sleep 1
        done
        memory="$(col memory 1) $(col memory 2) $(col memory 3)"
        echo "memory: shim pid $shim ($(tr '\0' ' ' < "/proc/$shim/cmdline" | cut -c1-60)...), QEMU pid $qemu" >&2
    else
        echo "memory: no QEMU process found in $dir/vms/bench#$vm_id" >&2
    fi
    if measure second --runtime aws.firecracker --annotation "aws.firecracker.vm.id=$vm_id"; then
        second_ok=1
    else
        show_failure "ctr run --rm --annotation aws.firecracker.vm.id=$vm_id (second container in a running VM)"
    fi
    printf '\n\033[1m== %s\033[0m\n' "ctr task exec into the running microVM's container" >&2
    measure_exec exec-vm "$sleeper" && exec_vm_ok=1 || show_failure "ctr task exec into $sleeper (microVM)"
    remove_container "$sleeper"
else
    show_failure "ctr run -d --annotation aws.firecracker.vm.id=$vm_id $sleeper sleep 600"
fi

# The big image against the small one: per snapshotter, runc first, then as second containers in a running microVM.
big_kinds=()
if [ "$big_mib" -gt 0 ]; then
    printf '\n\033[1m== %s\033[0m\n' "a ${big_mib} MiB image in 3000 files against the small one, per snapshotter (native, ${fc_snapshotter}$([ "${fc_erofs:-0}" = 1 ] && echo ", erofs"))" >&2
    big_image=docker.io/library/fc-bench-big:latest
    big_vm=benchbigvm
    big_sleeper=e2e-big-sleeper
    snapshotters=(native)
    [ "$fc_snapshotter" = native ] || snapshotters+=("$fc_snapshotter")
    if [ "${fc_erofs:-0}" = 1 ]; then
        snapshotters+=(erofs)
        # The big image's VM (booted next) gets read-only layer slots for the erofs snapshotter's layer files.
        sed -i 's/^{$/{\n  "layer_slots": 4,/' "$dir/runtime.json"
    fi
    import_big() {
        local snap
        for snap in "${snapshotters[@]}"; do
            fcctr image import --snapshotter "$snap" "$dir/big.tar" >/dev/null 2>>"$errors" || return 1
        done
    }
    if scripts/lib/busybox-oci-image "$dir/big.tar" "$big_image" "$big_mib" 3000 &&
            import_big &&
            fcctr run -d --snapshotter native --runtime aws.firecracker --annotation "aws.firecracker.vm.id=$big_vm" \
                "$image" "$big_sleeper" sleep 600 >/dev/null 2>>"$errors"; then
        rm -f "$dir/big.tar"
        for snap in "${snapshotters[@]}"; do
            run_snapshotter="$snap"
            for size in small big; do
                if [ "$size" = small ]; then run_image="$image"; else run_image="$big_image"; fi
                if [ "$snap" = native ]; then
                    measure "big-runc-$size" --runtime io.containerd.runc.v2 || show_failure "ctr run $size image with runc"
                fi
                measure "big-$snap-$size" --runtime aws.firecracker --annotation "aws.firecracker.vm.id=$big_vm" \
                    || show_failure "ctr run $size image ($snap) in a running microVM"
            done
            [ "$snap" = native ] && big_kinds+=(runc)
            big_kinds+=("$snap")
        done
        run_image="$image"; run_snapshotter=native
        remove_container "$big_sleeper"
    else
        show_failure "the big image: build, import or its microVM"
    fi
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.1fx\n", a / b }'; }
runc_first="$(col runc 1)"; runc_total="$(col runc 2)"
newvm_first=n/a; newvm_total=n/a; second_first=n/a; second_total=n/a
[ "$newvm_ok" = 1 ] && { newvm_first="$(col newvm 1)"; newvm_total="$(col newvm 2)"; }
[ "$second_ok" = 1 ] && { second_first="$(col second 1)"; second_total="$(col second 2)"; }

echo
echo "containerd $fc_containerd_version ($fc_containerd_bin)"
echo "ctr run, medians of $runs runs (s)        to first line   to exit   vs runc (first / exit)"
printf '  %-38s %10s %11s   %s\n' "runc (io.containerd.runc.v2)" "$runc_first" "$runc_total" "1.0x / 1.0x"
printf '  %-38s %10s %11s   %s / %s\n' "aws.firecracker, new microVM" "$newvm_first" "$newvm_total" "$(ratio "$newvm_first" "$runc_first")" "$(ratio "$newvm_total" "$runc_total")"
printf '  %-38s %10s %11s   %s / %s\n' "aws.firecracker, running microVM" "$second_first" "$second_total" "$(ratio "$second_first" "$runc_first")" "$(ratio "$second_total" "$runc_total")"
exec_runc=n/a; exec_vm=n/a
[ "$exec_runc_ok" = 1 ] && exec_runc="$(col exec-runc 1)"
[ "$exec_vm_ok" = 1 ] && exec_vm="$(col exec-vm 1)"
echo "ctr task exec (echo) into a running container, medians of $runs runs (s)   to exit   vs runc"
printf '  %-38s %10s   %s\n' "runc (io.containerd.runc.v2)" "$exec_runc" "1.0x"
printf '  %-38s %10s   %s\n' "aws.firecracker, running microVM" "$exec_vm" "$(ratio "$exec_vm" "$exec_runc")"
if [ "${#big_kinds[@]}" -gt 0 ]; then
    echo "big image ($big_mib MiB, 3000 files) against the small one, a second container in a running microVM, medians of $runs runs (s)"
    printf '  %-38s %10s %10s   %s   %s\n' "" "small" "big" "big / small" "big vs runc big"
    runc_big="$( [ -s "$dir/big-runc-big.txt" ] && col big-runc-big 1 || echo n/a)"
    for kind in "${big_kinds[@]}"; do
        small="$( [ -s "$dir/big-$kind-small.txt" ] && col "big-$kind-small" 1 || echo n/a)"
        large="$( [ -s "$dir/big-$kind-big.txt" ] && col "big-$kind-big" 1 || echo n/a)"
        case "$kind" in
            runc) label="runc (native snapshotter)" ;;
            native) label="aws.firecracker, native (copied)" ;;
            *) label="aws.firecracker, $kind (attached)" ;;
        esac
        printf '  %-38s %10s %10s   %11s   %s\n' "$label" "$small" "$large" "$(ratio "$large" "$small")" "$(ratio "$large" "$runc_big")"
    done
fi
# The phase trace of the timed runs (warm-ups left out): "trace <vm|task|exec> <id>: <phase> <ms> ms" lines of the shims
# in containerd's log, and the shim's own "N ms after its exec", per kind of run.
trace_summary() {
    local kind="$1"
    sed -n 's/.*msg="\(.*\)".*/\1/p' "$dir/containerd.log" | awk -v kind="e2e-$kind-" '
        function take(id, phase, ms) {
            if (index(id, kind) != 1 || substr(id, length(kind) + 1) == "0") return
            if (!(phase in count)) order[++phases] = phase
            values[phase, ++count[phase]] = ms
        }
        /^shim serving on .* ms after its exec$/ { ms = $(NF - 4); sub(/.* for [^\/]*\//, "", $0); split($0, a, ","); take(a[1], "shim exec to serving", ms) }
        /^trace (vm|task) [^:]+: .* ms$/ { id = $3; sub(/:$/, "", id); phase = $0; sub(/^trace [a-z]+ [^:]+: /, "", phase); sub(/ [0-9.]+ ms$/, "", phase); take(id, phase, $(NF - 1)) }
        END {
            for (p = 1; p <= phases; p++) {
                phase = order[p]; n = count[phase]
                for (i = 1; i <= n; i++) v[i] = values[phase, i]
                for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
                m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
                printf "    %-44s %9.1f ms  (%d runs)\n", phase, m, n
            }
        }'
}
echo "phase trace, medians of the timed runs"
echo "  a new microVM (the shim, the VM's boot, then the container)"
trace_summary newvm
echo "  a second container in a running microVM"
trace_summary second
if [ -n "$memory" ]; then
    read -r shim_kib qemu_kib guest_kib <<<"$memory"
    echo "host memory, one microVM with one sleep container (PSS, guest RAM excluded, median of 5 samples)"
    awk -v s="$shim_kib" -v q="$qemu_kib" -v g="$guest_kib" 'BEGIN {
        printf "  shim (vsock device included)  %7.1f MiB\n  VMM (QEMU)                    %7.1f MiB\n  total                         %7.1f MiB\n  (guest RAM touched, excluded: %.1f MiB)\n", s / 1024, q / 1024, (s + q) / 1024, g / 1024 }'
else
    echo "host memory: not measured (no running microVM)"
fi
[ "$newvm_ok" = 1 ] && [ "$second_ok" = 1 ] && [ "$exec_runc_ok" = 1 ] && [ "$exec_vm_ok" = 1 ]
