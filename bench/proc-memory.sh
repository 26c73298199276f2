# shellcheck shell=bash
# Sourced by the benchmarks that weigh VM processes (bench/e2e.sh, bench/density.sh).
# QEMU backs guest RAM with a memfd (-object memory-backend-memfd) and hands it to the shim's vhost-user
# vsock device, which maps it too; both mappings carry the memfd's name. Other memfds (the .NET runtime's
# "doublemapper" for JIT code) are the process's own memory and stay counted.
guest_ram=memfd:memory-backend-memfd

# pss_kib PID: proportional set size of PID in KiB, guest RAM mappings excluded (0 when PID is gone).
pss_kib() {
    awk -v g="$guest_ram" '/^[0-9a-f]+-[0-9a-f]+ / { guest = index($0, g) > 0 } /^Pss:/ && !guest { kib += $2 } END { print kib + 0 }' "/proc/$1/smaps" 2>/dev/null || echo 0
}

# guest_ram_kib PID: PSS of the guest RAM mappings, reported only to show what was left out.
guest_ram_kib() {
    awk -v g="$guest_ram" '/^[0-9a-f]+-[0-9a-f]+ / { guest = index($0, g) > 0 } /^Pss:/ && guest { kib += $2 } END { print kib + 0 }' "/proc/$1/smaps" 2>/dev/null || echo 0
}

# cpu_ticks PID...: user plus system CPU time of the PIDs, in clock ticks (getconf CLK_TCK per second).
cpu_ticks() {
    local pid total=0 stat
    for pid in "$@"; do
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        # Fields after the command (which may hold spaces) start at the last ')': utime and stime are 14 and 15.
        read -r -a fields <<< "${stat##*) }"
        total=$(( total + fields[11] + fields[12] ))
    done
    echo "$total"
}

# mem_available_kib: MemAvailable from /proc/meminfo.
mem_available_kib() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
