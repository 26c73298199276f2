namespace FirecrackerContainerd.Vmm.Jail;

/// <summary>The limits of one VM's cgroup.</summary>
/// <param name="MemoryBytes">The memory limit: guest RAM plus the VMM's overhead.</param>
/// <param name="CpuQuotaPercent">CPU time in percent of one core; 0 for no limit.</param>
/// <param name="PidsMax">The most tasks; 0 for no limit.</param>
/// <param name="Vcpus">
/// The guest's vCPUs: the cgroup's CPU weight is that many tasks' worth. A cgroup competes with its siblings as one
/// entity, so with the default weight (one task's) a 2-vCPU QEMU got a third of the CPU it got unjailed on a loaded host
/// (measured: VM start 1.4 s slower at a load average of 14).
/// </param>
public readonly record struct CgroupLimits(long MemoryBytes, int CpuQuotaPercent, int PidsMax, int Vcpus = 1)
{
    /// <summary>cgroup v1 <c>cpu.shares</c>: 1024 per vCPU (1024 is one task's default).</summary>
    public long CpuShares => 1024L * Math.Max(1, Vcpus);

    /// <summary>cgroup v2 <c>cpu.weight</c>: 100 per vCPU (100 is the default), at most 10000.</summary>
    public long CpuWeight => Math.Min(10_000L, 100L * Math.Max(1, Vcpus));

    /// <summary>The CFS period both hierarchies' quotas are expressed against, in microseconds (the kernel's default).</summary>
    public const int CpuPeriodMicroseconds = 100_000;

    /// <summary>The CFS quota for <see cref="CpuQuotaPercent"/>, in microseconds per period.</summary>
    public long CpuQuotaMicroseconds => (long)CpuQuotaPercent * CpuPeriodMicroseconds / 100;
}
