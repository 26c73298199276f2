using System.Collections.Immutable;
using System.Globalization;
using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>
/// The jailer's <c>--cgroup-version</c> and <c>--cgroup file=value</c> settings that give a jailed Firecracker the same
/// limits the QEMU jail writes itself (<see cref="VmCgroups"/>): memory, CPU weight per vCPU, CPU quota, pids.
/// </summary>
/// <remarks>
/// The jailer makes <c>&lt;hierarchy&gt;/&lt;parent&gt;/&lt;id&gt;</c> for each controller a file names (the part before
/// the first '.'), writes the values in the order given and joins it. Under v1 that is memory, cpu and pids, the
/// hierarchies <see cref="CgroupV1"/> removes again; under v2 the unified directory.
/// </remarks>
public static class JailerCgroups
{
    /// <summary>The jailer's <c>--cgroup-version</c> for the hierarchy <paramref name="cgroups"/> detected.</summary>
    public static int VersionOf(VmCgroups cgroups) => cgroups switch
    {
        CgroupV2 => 2,
        CgroupV1 => 1,
        _ => throw new ArgumentException($"cgroup hierarchy {cgroups?.GetType().Name} has no jailer --cgroup-version", nameof(cgroups)),
    };

    /// <summary>The <c>file=value</c> settings for <paramref name="limits"/> under cgroup <paramref name="version"/>.</summary>
    public static ImmutableArray<string> Settings(CgroupLimits limits, int version)
    {
        var settings = ImmutableArray.CreateBuilder<string>();
        switch (version)
        {
            case 1:
                settings.Add(Setting("memory.limit_in_bytes", Number(limits.MemoryBytes)));
                settings.Add(Setting("cpu.shares", Number(limits.CpuShares)));
                if (limits.CpuQuotaPercent > 0)
                {
                    // The period first: the kernel checks a quota against the period in force.
                    settings.Add(Setting("cpu.cfs_period_us", Number(CgroupLimits.CpuPeriodMicroseconds)));
                    settings.Add(Setting("cpu.cfs_quota_us", Number(limits.CpuQuotaMicroseconds)));
                }

                if (limits.PidsMax > 0)
                {
                    settings.Add(Setting("pids.max", Number(limits.PidsMax)));
                }

                break;
            case 2:
                settings.Add(Setting("memory.max", Number(limits.MemoryBytes)));
                settings.Add(Setting("cpu.weight", Number(limits.CpuWeight)));
                settings.Add(Setting("cpu.max", limits.CpuQuotaPercent > 0
                    ? $"{Number(limits.CpuQuotaMicroseconds)} {Number(CgroupLimits.CpuPeriodMicroseconds)}"
                    : $"max {Number(CgroupLimits.CpuPeriodMicroseconds)}"));
                settings.Add(Setting("pids.max", limits.PidsMax > 0 ? Number(limits.PidsMax) : "max"));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(version), version, "the jailer knows cgroup versions 1 and 2");
        }

        return settings.ToImmutable();
    }

    private static string Setting(string file, string value) => file + "=" + value;

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
