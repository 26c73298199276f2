using System.Collections.Immutable;
using System.Text.RegularExpressions;
using FirecrackerContainerd.Vmm.Launch;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>Builds the jailer command line that starts Firecracker in its chroot.</summary>
public static partial class JailerCommand
{
    /// <summary>The jailer accepts ids of letters, digits and '-' up to 64 characters.</summary>
    public const int MaxIdLength = 64;

    /// <summary>Returns the launch of <c>jailer --id ... --exec-file ... -- &lt;firecracker args&gt;</c>.</summary>
    /// <param name="options">Jail settings.</param>
    /// <param name="vmId">The machine id, passed as the jailer id.</param>
    /// <param name="firecrackerBinary">Absolute path of the Firecracker binary (the jailer copies it into the jail).</param>
    /// <param name="firecrackerArguments">Arguments for Firecracker itself, paths as seen inside the jail.</param>
    /// <param name="setprivPath">setpriv for the parent-death signal, or null.</param>
    public static VmmLaunch Build(
        JailerOptions options, string vmId, string firecrackerBinary, IEnumerable<string> firecrackerArguments, string? setprivPath)
    {
        ArgumentNullException.ThrowIfNull(options);
        ValidateId(vmId);
        if (!Path.IsPathFullyQualified(firecrackerBinary))
        {
            throw new ArgumentException($"jailer for vm \"{vmId}\": --exec-file must be an absolute path, not \"{firecrackerBinary}\"", nameof(firecrackerBinary));
        }

        var args = ImmutableArray.CreateBuilder<string>();
        args.AddRange("--id", vmId, "--exec-file", firecrackerBinary,
            "--uid", options.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--gid", options.Gid.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--chroot-base-dir", options.ChrootBaseDir);
        if (options.NetNsPath is not null)
        {
            args.AddRange("--netns", options.NetNsPath);
        }

        if (options.CgroupVersion is { } version)
        {
            args.AddRange("--cgroup-version", version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (options.ParentCgroup is not null)
        {
            args.AddRange("--parent-cgroup", options.ParentCgroup);
        }

        foreach (var cgroup in options.Cgroups)
        {
            if (!cgroup.Contains('=', StringComparison.Ordinal))
            {
                throw new ArgumentException($"jailer for vm \"{vmId}\": cgroup setting \"{cgroup}\" is not of the form file=value", nameof(options));
            }

            args.AddRange("--cgroup", cgroup);
        }

        args.Add("--");
        args.AddRange(firecrackerArguments);
        return new VmmLaunch(options.JailerBinary, args.ToImmutable(), options.ChrootBaseDir, setprivPath);
    }

    /// <summary>Throws when <paramref name="vmId"/> is not a valid jailer id.</summary>
    public static void ValidateId(string vmId)
    {
        if (string.IsNullOrEmpty(vmId) || vmId.Length > MaxIdLength || !JailerIdPattern().IsMatch(vmId))
        {
            throw new ArgumentException(
                $"vm id \"{vmId}\" cannot be a jailer id: it must be 1..{MaxIdLength} letters, digits or '-'", nameof(vmId));
        }
    }

    [GeneratedRegex(@"^[A-Za-z0-9-]+\z")]
    private static partial Regex JailerIdPattern();
}
