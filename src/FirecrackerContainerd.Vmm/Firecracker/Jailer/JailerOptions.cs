using System.Collections.Immutable;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>How to run Firecracker inside its jailer: the unprivileged ids, the chroot base and optional namespaces and cgroups.</summary>
/// <param name="Uid">User id Firecracker runs as after the jailer drops privileges.</param>
/// <param name="Gid">Group id Firecracker runs as.</param>
/// <param name="ChrootBaseDir">Base of the chroot tree; the jail is <c>&lt;base&gt;/&lt;exec file name&gt;/&lt;vm id&gt;/root</c>.</param>
/// <param name="JailerBinary">The jailer program (a path or a name on PATH).</param>
/// <param name="NetNsPath">A network namespace to join (e.g. <c>/var/run/netns/x</c>), or null.</param>
/// <param name="Cgroups">Cgroup settings as <c>file=value</c> (e.g. <c>cpuset.cpus=0</c>).</param>
/// <param name="CgroupVersion">1 or 2, or null for the jailer's default.</param>
/// <param name="ParentCgroup">Cgroup under which the jail's cgroup is made, or null.</param>
public sealed record JailerOptions(
    uint Uid,
    uint Gid,
    string ChrootBaseDir = JailerOptions.DefaultChrootBaseDir,
    string JailerBinary = "jailer",
    string? NetNsPath = null,
    ImmutableArray<string> Cgroups = default,
    int? CgroupVersion = null,
    string? ParentCgroup = null)
{
    /// <summary>The jailer's own default chroot base.</summary>
    public const string DefaultChrootBaseDir = "/srv/jailer";

    /// <summary>The cgroup settings, never default.</summary>
    public ImmutableArray<string> Cgroups { get; init; } = Cgroups.IsDefault ? [] : Cgroups;
}
