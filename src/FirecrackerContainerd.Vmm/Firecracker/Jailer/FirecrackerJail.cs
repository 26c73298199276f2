using FirecrackerContainerd.Vmm.Jail;
using FirecrackerContainerd.Vmm.Launch;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>
/// One jailed Firecracker's host side, from the runtime's jail settings: its uid lease (from the range QEMU's jail
/// uses), its jail tree, and the cgroup the jailer makes; it builds the jailer launch and removes all of it at the end.
/// </summary>
internal sealed class FirecrackerJail : IDisposable
{
    private readonly VmCgroups _cgroups;
    private readonly UidLease _lease;
    private readonly string _execFile;
    private int _disposed;

    private FirecrackerJail(VmCgroups cgroups, UidLease lease, JailLayout layout, JailerOptions options, string cgroupPath, string execFile)
    {
        _cgroups = cgroups;
        _lease = lease;
        Layout = layout;
        Options = options;
        CgroupPath = cgroupPath;
        _execFile = execFile;
    }

    /// <summary>The jail tree and the files staged in it.</summary>
    public JailLayout Layout { get; }

    /// <summary>The jailer's arguments for this VM.</summary>
    public JailerOptions Options { get; }

    /// <summary>The cgroup the jailer makes, <c>&lt;cgroup parent&gt;/&lt;jailer id&gt;</c> in each hierarchy.</summary>
    public string CgroupPath { get; }

    /// <summary>The VM's uid and gid.</summary>
    public uint Uid => _lease.Uid;

    /// <summary>
    /// Checks the settings and programs, clears what an earlier run of this VM left (jail tree with its mounts, cgroup),
    /// takes a uid and makes the jail root. Every failure comes before any process starts, naming the VM and the path.
    /// </summary>
    /// <param name="settings">The runtime's jail settings.</param>
    /// <param name="cgroups">The host's cgroup hierarchy (<see cref="VmCgroups.Detect"/>).</param>
    /// <param name="jailerId">The VM's jailer id (<see cref="JailerId.For"/>).</param>
    /// <param name="execFile">Firecracker by absolute path, links resolved.</param>
    /// <param name="spec">The machine: its id for messages, its memory and vCPUs for the limits, its network namespace.</param>
    public static FirecrackerJail Prepare(JailSettings settings, VmCgroups cgroups, string jailerId, string execFile, MachineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(cgroups);
        ArgumentNullException.ThrowIfNull(spec);
        string vmId = spec.VmId;
        if (settings.Problems() is { Count: > 0 } problems)
        {
            throw new InvalidOperationException($"vm \"{vmId}\": the jail configuration is not valid: {string.Join("; ", problems)}");
        }

        string jailer = ProgramPath.Resolve(settings.JailerBinary, $"vm \"{vmId}\": Firecracker's jailer (jail.jailer_path)");
        if (!File.Exists(execFile))
        {
            throw new FileNotFoundException($"vm \"{vmId}\": the Firecracker binary {execFile} does not exist", execFile);
        }

        string cgroupPath = settings.CgroupParent + "/" + jailerId;
        string jailDirectory = JailLayout.JailDirectoryOf(settings.ChrootBase, Path.GetFileName(execFile), jailerId);
        try
        {
            // The jailer wants an existing base; it refuses to reuse a pid file, so a leftover tree must go.
            Directory.CreateDirectory(settings.ChrootBase);
            JailLayout.Clear(jailDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"vm \"{vmId}\": cannot clear the jail {jailDirectory} under jail.chroot_base {settings.ChrootBase}: {e.Message}", e);
        }

        RemoveCgroup(cgroups, cgroupPath, vmId);
        UidLease lease = new UidAllocator(Path.Combine(settings.ChrootBase, "uids"), settings.UidStart, settings.UidCount).Acquire(vmId);
        var layout = new JailLayout(settings.ChrootBase, Path.GetFileName(execFile), jailerId, lease.Uid, lease.Uid, settings.DriveExposePolicy);
        try
        {
            layout.Create();
            int version = JailerCgroups.VersionOf(cgroups);
            long memory = ((long)spec.Machine.MemSizeMib + settings.MemoryOverheadMib) << 20;
            var limits = new CgroupLimits(memory, settings.CpuQuotaPercent, settings.PidsMax, spec.Machine.VcpuCount);
            var options = new JailerOptions(
                lease.Uid,
                lease.Uid,
                Path.GetFullPath(settings.ChrootBase),
                jailer,
                spec.NetworkNamespace,
                JailerCgroups.Settings(limits, version),
                version,
                settings.CgroupParent,
                [$"no-file={JailerOptions.DefaultFileDescriptorLimit}"]);
            return new FirecrackerJail(cgroups, lease, layout, options, cgroupPath, execFile);
        }
        catch
        {
            layout.Dispose();
            lease.Dispose();
            throw;
        }
    }

    /// <summary>The launch of the jailer that starts Firecracker with <paramref name="firecrackerArguments"/>.</summary>
    public VmmLaunch Launch(IEnumerable<string> firecrackerArguments) =>
        JailerCommand.Build(Options, Layout.Id, _execFile, firecrackerArguments);

    /// <summary>Unmounts and removes the jail tree, removes the cgroup and releases the uid; call once Firecracker is gone.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            Layout.Dispose();
            RemoveCgroup(_cgroups, CgroupPath, Layout.Id);
        }
        finally
        {
            _lease.Dispose();
        }
    }

    private static void RemoveCgroup(VmCgroups cgroups, string path, string vmId)
    {
        try
        {
            cgroups.RemoveOnceDrained(path);
        }
        catch (IOException e)
        {
            throw new IOException($"vm \"{vmId}\": cannot remove the jailer's cgroup {path}: {e.Message}", e);
        }
    }
}
