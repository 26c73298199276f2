using FirecrackerContainerd.Vmm.Launch;

namespace FirecrackerContainerd.Vmm.Jail;

/// <summary>
/// One VM's jail on the host side: its uid lease, its cgroup and its jail directory
/// (<c>&lt;chroot base&gt;/&lt;vm id&gt;/root</c>, empty on the host: what the jailed processes see there is a tmpfs in
/// their own mount namespace). It turns a program into the fc-jail launch that confines it, and removes everything
/// once the VM's processes are gone.
/// </summary>
public sealed class VmJail : IDisposable
{
    private readonly JailSettings _settings;
    private readonly VmCgroups _cgroups;
    private readonly UidLease _lease;
    private int _disposed;

    private VmJail(JailSettings settings, VmCgroups cgroups, string vmId, UidLease lease)
    {
        _settings = settings;
        _cgroups = cgroups;
        _lease = lease;
        VmId = vmId;
    }

    /// <summary>The VM the jail belongs to.</summary>
    public string VmId { get; }

    /// <summary>The VM's uid and gid.</summary>
    public uint Uid => _lease.Uid;

    /// <summary><c>&lt;chroot base&gt;/&lt;vm id&gt;</c>, removed whole at the end.</summary>
    public string Directory => JailDirectory(_settings, VmId);

    /// <summary>The chroot of every jailed process of this VM.</summary>
    public string RootPath => Path.Combine(Directory, "root");

    /// <summary>The VM's cgroup, relative to each hierarchy's root.</summary>
    public string CgroupPath => CgroupPathOf(_settings, VmId);

    /// <summary>The cgroup directories (one per hierarchy).</summary>
    public IReadOnlyList<string> CgroupDirectories => _cgroups.Directories(CgroupPath);

    /// <summary>
    /// Checks the settings and programs, clears what a crashed shim left for <paramref name="vmId"/> (jail directory,
    /// cgroup), takes a uid and makes the cgroup with a memory limit of <paramref name="guestMemoryMib"/> plus the
    /// configured overhead, and a CPU weight of <paramref name="vcpus"/> tasks. Every failure comes before any process starts, with a message naming the VM and the path.
    /// </summary>
    public static VmJail Prepare(JailSettings settings, VmCgroups cgroups, string vmId, int guestMemoryMib, int vcpus = 1)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(cgroups);
        if (vmId.Length == 0 || vmId.Contains('/', StringComparison.Ordinal) || vmId is "." or "..")
        {
            throw new ArgumentException($"vm \"{vmId}\": the id cannot name a jail directory", nameof(vmId));
        }

        if (settings.Problems() is { Count: > 0 } problems)
        {
            throw new InvalidOperationException($"vm \"{vmId}\": the jail configuration is not valid: {string.Join("; ", problems)}");
        }

        foreach (string program in new[] { settings.LauncherBinary, settings.VsockDeviceBinary })
        {
            if (!Path.IsPathFullyQualified(program) || !File.Exists(program))
            {
                throw new FileNotFoundException($"vm \"{vmId}\": the jail needs {program}, which does not exist (publish it with scripts/lib/publish)", program);
            }
        }

        string directory = JailDirectory(settings, vmId);
        try
        {
            System.IO.Directory.CreateDirectory(settings.ChrootBase);
            if (System.IO.Directory.Exists(directory))
            {
                // Only a crashed shim leaves one: its mounts died with its processes' namespaces, so it is plain files.
                System.IO.Directory.Delete(directory, recursive: true);
            }

            System.IO.Directory.CreateDirectory(Path.Combine(directory, "root"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"vm \"{vmId}\": cannot make the jail directory {directory} under jail.chroot_base {settings.ChrootBase}: {e.Message}", e);
        }

        UidLease lease;
        try
        {
            lease = new UidAllocator(Path.Combine(settings.ChrootBase, "uids"), settings.UidStart, settings.UidCount).Acquire(vmId);
        }
        catch
        {
            TryDeleteDirectory(directory);
            throw;
        }

        var jail = new VmJail(settings, cgroups, vmId, lease);
        try
        {
            long memory = ((long)guestMemoryMib + settings.MemoryOverheadMib) << 20;
            cgroups.Create(jail.CgroupPath, new CgroupLimits(memory, settings.CpuQuotaPercent, settings.PidsMax, vcpus));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            jail.Dispose();
            throw new IOException($"vm \"{vmId}\": cannot make the jail's cgroup {jail.CgroupPath}: {e.Message}", e);
        }

        return jail;
    }

    /// <summary>The launch that runs <paramref name="program"/> confined, as pid 1 of its own pid namespace, in <paramref name="networkNamespace"/>.</summary>
    public VmmLaunch Launch(JailedProgram program, string? networkNamespace)
    {
        ArgumentNullException.ThrowIfNull(program);
        string hostname = "fc-" + (VmId.Length > 60 ? VmId[..60] : VmId);
        return new VmmLaunch(
            _settings.LauncherBinary,
            JailCommand.Arguments(RootPath, Uid, hostname, _cgroups.ProcsFiles(CgroupPath), program),
            program.WorkingDirectory,
            SetprivPath: null,
            NetworkNamespace: networkNamespace,
            NewPidNamespace: true,
            HoldStandardInput: true);
    }

    /// <summary>Gives <paramref name="path"/> (a file or directory the VM's processes write) to the VM's uid.</summary>
    public void Chown(string path) => Interop.Chown(path, Uid, Uid);

    /// <summary>Removes the cgroup and the jail directory and releases the uid; call once the VM's processes are gone.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            _cgroups.RemoveOnceDrained(CgroupPath);
        }
        finally
        {
            TryDeleteDirectory(Directory);
            _lease.Dispose();
        }
    }

    /// <summary>
    /// Removes what a shim killed with SIGKILL left of <paramref name="vmId"/>'s jail: its processes died with it (their
    /// parent-death signal), their mounts with their namespaces and its uid lock with its descriptor; the cgroup and the
    /// jail directory remain. A cgroup that still holds processes is an error (nothing is killed here).
    /// </summary>
    /// <remarks>
    /// The directory goes first: it is plain on the host even while a dying process's namespace still has its tmpfs on
    /// it (the kernel detaches such a mount). The cgroup is given the drain wait, because containerd runs this as
    /// soon as the shim is gone, while the kernel may still be tearing down QEMU's memory.
    /// </remarks>
    public static void ClearLeftovers(JailSettings settings, VmCgroups cgroups, string vmId)
    {
        ArgumentNullException.ThrowIfNull(cgroups);
        TryDeleteDirectory(JailDirectory(settings, vmId));
        cgroups.RemoveOnceDrained(CgroupPathOf(settings, vmId));
    }

    /// <summary>The jail directory of <paramref name="vmId"/>.</summary>
    public static string JailDirectory(JailSettings settings, string vmId)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return Path.Combine(settings.ChrootBase, vmId);
    }

    /// <summary>The cgroup path of <paramref name="vmId"/>, relative to each hierarchy's root.</summary>
    public static string CgroupPathOf(JailSettings settings, string vmId)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.CgroupParent + "/" + vmId;
    }

    private static void TryDeleteDirectory(string directory)
    {
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
