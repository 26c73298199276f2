namespace FirecrackerContainerd.Vmm.Jail;

/// <summary>The limits of one VM's cgroup.</summary>
/// <param name="MemoryBytes">The memory limit: guest RAM plus the VMM's overhead.</param>
/// <param name="CpuQuotaPercent">CPU time in percent of one core; 0 for no limit.</param>
/// <param name="PidsMax">The most tasks; 0 for no limit.</param>
public readonly record struct CgroupLimits(long MemoryBytes, int CpuQuotaPercent, int PidsMax)
{
    /// <summary>The CFS period both hierarchies' quotas are expressed against, in microseconds (the kernel's default).</summary>
    public const int CpuPeriodMicroseconds = 100_000;

    /// <summary>The CFS quota for <see cref="CpuQuotaPercent"/>, in microseconds per period.</summary>
    public long CpuQuotaMicroseconds => (long)CpuQuotaPercent * CpuPeriodMicroseconds / 100;
}
