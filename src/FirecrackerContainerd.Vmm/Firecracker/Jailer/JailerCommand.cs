using System.Collections.Immutable;
using System.Globalization;
using FirecrackerContainerd.Vmm.Launch;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>Builds the jailer command line that starts Firecracker in its chroot (Firecracker's docs/jailer.md).</summary>
/// <remarks>
/// The jailer's own <c>--new-pid-ns</c> is not passed: with it the jailer forks Firecracker into the new namespace and
/// exits at once, leaving Firecracker a child of init that we could neither await nor read an exit status from. The
/// launch asks <see cref="VmmProcess"/> for the pid namespace instead: the jailer starts as pid 1 of a new one and
/// execs Firecracker in place, so Firecracker is that pid 1, our child, awaited and killed by its pid. No setpriv: the
/// jailer's switch of uid and gid clears a parent-death signal anyway.
/// </remarks>
public static class JailerCommand
{
    /// <summary>Returns the launch of <c>jailer --id ... --exec-file ... -- &lt;firecracker args&gt;</c>.</summary>
    /// <param name="options">This VM's jailer arguments.</param>
    /// <param name="jailerId">The jailer id (<see cref="JailerId.For"/>).</param>
    /// <param name="firecrackerBinary">Absolute path of the Firecracker binary, links resolved: its file name is the jail's directory.</param>
    /// <param name="firecrackerArguments">Arguments for Firecracker itself, paths as seen inside the jail.</param>
    public static VmmLaunch Build(JailerOptions options, string jailerId, string firecrackerBinary, IEnumerable<string> firecrackerArguments)
    {
        ArgumentNullException.ThrowIfNull(options);
        JailerId.Validate(jailerId);
        if (!Path.IsPathFullyQualified(firecrackerBinary))
        {
            throw new ArgumentException($"jailer id {jailerId}: --exec-file must be an absolute path, not \"{firecrackerBinary}\"", nameof(firecrackerBinary));
        }

        var args = ImmutableArray.CreateBuilder<string>();
        args.AddRange("--id", jailerId, "--exec-file", firecrackerBinary,
            "--uid", options.Uid.ToString(CultureInfo.InvariantCulture),
            "--gid", options.Gid.ToString(CultureInfo.InvariantCulture),
            "--chroot-base-dir", options.ChrootBaseDir);
        if (options.NetNsPath is not null)
        {
            args.AddRange("--netns", options.NetNsPath);
        }

        if (options.CgroupVersion is { } version)
        {
            args.AddRange("--cgroup-version", version.ToString(CultureInfo.InvariantCulture));
        }

        if (options.ParentCgroup is not null)
        {
            args.AddRange("--parent-cgroup", options.ParentCgroup);
        }

        foreach (var cgroup in options.Cgroups)
        {
            args.AddRange("--cgroup", RequireSetting(cgroup, "cgroup setting", jailerId));
        }

        foreach (var limit in options.ResourceLimits)
        {
            args.AddRange("--resource-limit", RequireSetting(limit, "resource limit", jailerId));
        }

        args.Add("--");
        args.AddRange(firecrackerArguments);
        return new VmmLaunch(options.JailerBinary, args.ToImmutable(), options.ChrootBaseDir, SetprivPath: null, NewPidNamespace: true);
    }

    // The jailer splits on '=' and wants exactly two parts, the second not empty.
    private static string RequireSetting(string setting, string what, string jailerId)
    {
        string[] parts = setting.Split('=');
        return parts.Length == 2 && parts[0].Length > 0 && parts[1].Length > 0
            ? setting
            : throw new ArgumentException($"jailer id {jailerId}: {what} \"{setting}\" is not of the form name=value", nameof(setting));
    }
}
