using System.Collections.Immutable;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>One VM's jailer arguments: the unprivileged ids, the chroot base, the namespaces, cgroups and resource limits.</summary>
/// <param name="Uid">User id Firecracker runs as after the jailer drops privileges.</param>
/// <param name="Gid">Group id Firecracker runs as.</param>
/// <param name="ChrootBaseDir">Base of the chroot tree; the jail is <c>&lt;base&gt;/&lt;exec file name&gt;/&lt;jailer id&gt;/root</c>.</param>
/// <param name="JailerBinary">The jailer program, by absolute path or a name on PATH.</param>
/// <param name="NetNsPath">A network namespace to join (e.g. <c>/var/run/netns/x</c>), or null.</param>
/// <param name="Cgroups">Cgroup settings as <c>file=value</c> (e.g. <c>memory.max=268435456</c>).</param>
/// <param name="CgroupVersion">1 or 2, or null for the jailer's default (1).</param>
/// <param name="ParentCgroup">Cgroup under which the jail's cgroup <c>&lt;parent&gt;/&lt;jailer id&gt;</c> is made, or null for the jailer's default (the exec file name).</param>
/// <param name="ResourceLimits">setrlimit settings as <c>resource=value</c> (<c>no-file</c>, <c>fsize</c>).</param>
public sealed record JailerOptions(
    uint Uid,
    uint Gid,
    string ChrootBaseDir = JailerOptions.DefaultChrootBaseDir,
    string JailerBinary = "jailer",
    string? NetNsPath = null,
    ImmutableArray<string> Cgroups = default,
    int? CgroupVersion = null,
    string? ParentCgroup = null,
    ImmutableArray<string> ResourceLimits = default)
{
    /// <summary>The jailer's own default chroot base.</summary>
    public const string DefaultChrootBaseDir = "/srv/jailer";

    /// <summary>
    /// The most file descriptors a jailed Firecracker may hold (<c>--resource-limit no-file</c>): the jailer's own default,
    /// passed explicitly so the bound is ours whatever the jailer version. Firecracker holds a few per drive, tap and
    /// vsock connection; a guest that opens vsock connections without end meets this bound, not the host's.
    /// </summary>
    public const int DefaultFileDescriptorLimit = 2048;

    /// <summary>The cgroup settings, never default.</summary>
    public ImmutableArray<string> Cgroups { get; init; } = Cgroups.IsDefault ? [] : Cgroups;

    /// <summary>The resource limits, never default.</summary>
    public ImmutableArray<string> ResourceLimits { get; init; } = ResourceLimits.IsDefault ? [] : ResourceLimits;
}
