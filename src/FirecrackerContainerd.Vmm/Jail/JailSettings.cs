namespace FirecrackerContainerd.Vmm.Jail;

/// <summary>How VMM processes are confined: the uid range, where the jails and cgroups live, the limits, and the two programs involved.</summary>
/// <param name="UidStart">The first uid (and gid) of the range each VM takes one from.</param>
/// <param name="UidCount">How many uids the range holds: at most that many VMs run at once on this host.</param>
/// <param name="ChrootBase">Where each VM's jail directory (<c>&lt;vm id&gt;/root</c>) and the uid locks (<c>uids/</c>) live.</param>
/// <param name="CgroupParent">The cgroup each VM's own cgroup is made under, relative to each hierarchy's root.</param>
/// <param name="MemoryOverheadMib">Memory the VMM may use beyond guest RAM before its cgroup limit stops it.</param>
/// <param name="CpuQuotaPercent">The VMM's CPU limit in percent of one core; 0 sets none.</param>
/// <param name="PidsMax">The most tasks (threads count) the VMM's cgroup may hold; 0 sets none.</param>
/// <param name="LauncherBinary">fc-jail, by absolute path.</param>
/// <param name="VsockDeviceBinary">fc-vhost-vsock, by absolute path: under the jail the device runs as its own jailed process.</param>
public sealed record JailSettings(
    uint UidStart,
    uint UidCount,
    string ChrootBase,
    string CgroupParent,
    int MemoryOverheadMib,
    int CpuQuotaPercent,
    int PidsMax,
    string LauncherBinary,
    string VsockDeviceBinary)
{
    /// <summary>The chroot base when the configuration names none.</summary>
    public const string DefaultChrootBase = "/run/firecracker-containerd/jail";

    /// <summary>The cgroup parent when the configuration names none.</summary>
    public const string DefaultCgroupParent = "firecracker-containerd";

    /// <summary>
    /// QEMU's own memory beyond guest RAM under TCG: about 120 MiB resident at a bare boot (translation cache, device
    /// state, libraries), more with containers and I/O; docs/jail.md has the measurement.
    /// </summary>
    public const int DefaultMemoryOverheadMib = 256;

    /// <summary>Firecracker's jailer (<c>jail.jailer_path</c>): a path, or a name looked up on PATH; used when Firecracker is the VMM.</summary>
    public string JailerBinary { get; init; } = "jailer";

    /// <summary>How a jailed Firecracker's kernel, initrd and drives reach its chroot (<c>jail.drive_expose_policy</c>).</summary>
    public Firecracker.Jailer.DriveExposePolicy DriveExposePolicy { get; init; } = Firecracker.Jailer.DriveExposePolicy.Copy;

    /// <summary>What is wrong with these settings, one phrase each; empty when they can be used.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (UidCount == 0)
        {
            problems.Add("jail.uid_range.count is 0: no VM could get a uid");
        }

        if (UidStart == 0 || (ulong)UidStart + UidCount > uint.MaxValue)
        {
            problems.Add($"jail.uid_range start {UidStart} count {UidCount} is not a range of non-zero uids");
        }

        if (!Path.IsPathFullyQualified(ChrootBase))
        {
            problems.Add($"jail.chroot_base {ChrootBase} is not an absolute path");
        }

        if (CgroupParent.Length == 0 || CgroupParent.Split('/').Any(part => part is "" or "." or ".."))
        {
            problems.Add($"jail.cgroup_parent \"{CgroupParent}\" is not a relative cgroup path");
        }

        if (MemoryOverheadMib < 0)
        {
            problems.Add($"jail.memory_overhead_mib {MemoryOverheadMib} is negative");
        }

        if (CpuQuotaPercent < 0)
        {
            problems.Add($"jail.cpu_quota_percent {CpuQuotaPercent} is negative");
        }

        if (PidsMax < 0)
        {
            problems.Add($"jail.pids_max {PidsMax} is negative");
        }

        return problems;
    }
}
