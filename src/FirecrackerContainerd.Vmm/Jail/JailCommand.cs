using System.Collections.Immutable;
using System.Globalization;

namespace FirecrackerContainerd.Vmm.Jail;

/// <summary>What one jailed process gets: its program and arguments, and the host paths it may see.</summary>
/// <param name="Program">The program, by absolute host path (bound read-only at that path).</param>
/// <param name="Arguments">Its arguments, unchanged: every path in them means the same file inside the jail.</param>
/// <param name="ReadOnly">Further host paths bound read-only (kernel, initrd, firmware).</param>
/// <param name="ReadWrite">Host paths bound read-write (the VM directory).</param>
/// <param name="Devices">Device nodes the jail makes in its /dev (owned by the jail's uid).</param>
/// <param name="Taps">TAP devices whose owner becomes the jail's uid.</param>
/// <param name="WorkingDirectory">Where the program starts.</param>
public sealed record JailedProgram(
    string Program,
    ImmutableArray<string> Arguments,
    ImmutableArray<string> ReadOnly,
    ImmutableArray<string> ReadWrite,
    ImmutableArray<string> Devices,
    ImmutableArray<string> Taps,
    string WorkingDirectory);

/// <summary>Builds fc-jail's command line (src/FirecrackerContainerd.Jail reads it) for one jailed program.</summary>
public static class JailCommand
{
    /// <summary>
    /// What every dynamically linked program needs besides itself: the multiarch library directory (as a whole: QEMU's
    /// 50-odd libraries and its modules, without tracking each), then the loader at the path the x86_64 ABI fixes, whose
    /// links on a merged-/usr host lead into that directory.
    /// </summary>
    public static readonly ImmutableArray<string> RuntimeLibraries = ["/usr/lib/x86_64-linux-gnu", "/lib64/ld-linux-x86-64.so.2"];

    /// <summary>The device nodes any jailed program gets.</summary>
    public static readonly ImmutableArray<string> BaseDevices = ["/dev/null", "/dev/zero", "/dev/urandom"];

    /// <summary>The argv after fc-jail's own name: the jail's options, <c>--</c>, then the program and its arguments.</summary>
    public static ImmutableArray<string> Arguments(string root, uint uid, string hostname, IEnumerable<string> cgroupProcs, JailedProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(cgroupProcs);
        string id = uid.ToString(CultureInfo.InvariantCulture);
        var argv = ImmutableArray.CreateBuilder<string>();
        argv.AddRange("--root", root, "--uid", id, "--gid", id, "--hostname", hostname);
        foreach (string path in new[] { program.Program }.Concat(RuntimeLibraries).Concat(program.ReadOnly).Distinct(StringComparer.Ordinal))
        {
            argv.AddRange("--ro", path);
        }

        foreach (string path in program.ReadWrite)
        {
            argv.AddRange("--rw", path);
        }

        foreach (string path in BaseDevices.Concat(program.Devices).Distinct(StringComparer.Ordinal))
        {
            argv.AddRange("--dev", path);
        }

        foreach (string procs in cgroupProcs)
        {
            argv.AddRange("--cgroup-procs", procs);
        }

        foreach (string tap in program.Taps)
        {
            argv.AddRange("--tap", tap);
        }

        // Standard input is the pipe whose write end the shim holds (VmmLaunch.HoldStandardInput).
        argv.AddRange("--chdir", program.WorkingDirectory, "--parent-fd", "0", "--", program.Program);
        argv.AddRange(program.Arguments);
        return argv.ToImmutable();
    }
}
