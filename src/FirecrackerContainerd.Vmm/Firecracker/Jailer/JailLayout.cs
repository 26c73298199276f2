using System.Collections.Immutable;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>
/// The jailer's tree of one VM, <c>&lt;base&gt;/&lt;exec file name&gt;/&lt;jailer id&gt;/root</c>, and the files a
/// machine's Firecracker opens there, exposed by a <see cref="DriveExposePolicy"/>.
/// </summary>
/// <remarks>
/// Inside the jail Firecracker sees only <see cref="RootDir"/> (as <c>/</c>, its working directory), so the kernel,
/// initrd and drives are put there as <c>/kernel</c>, <c>/initrd</c> and <c>/drive_&lt;id&gt;</c>, and sockets and
/// FIFOs are named relative to the root: the same relative names work inside and, joined to <see cref="RootDir"/>,
/// outside. Copy never hard-links: a link shares the inode, so chowning it to the VM's uid would hand the original
/// (the shared root drive, the kernel) to this VM. A drive patched later gets a new name (<c>/drive_&lt;id&gt;-&lt;n&gt;</c>),
/// and the file it replaces goes once Firecracker has switched, so a failed patch leaves the drive as it was and a
/// bound file is not pinned past its use.
/// </remarks>
internal sealed class JailLayout : IDisposable
{
    /// <summary>Name of the kernel inside the jail.</summary>
    public const string KernelName = "kernel";

    /// <summary>Name of the initrd inside the jail.</summary>
    public const string InitrdName = "initrd";

    private readonly Dictionary<string, (string? Path, int Generation)> _drives = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private int _disposed;

    /// <summary>Describes the jail <paramref name="jailerId"/> of <paramref name="execFileName"/> under <paramref name="chrootBaseDir"/>; nothing is made until <see cref="Create"/>.</summary>
    public JailLayout(string chrootBaseDir, string execFileName, string jailerId, uint uid, uint gid, DriveExposePolicy policy)
    {
        JailerId.Validate(jailerId);
        Id = jailerId;
        Uid = uid;
        Gid = gid;
        Policy = policy;
        Directory = JailDirectoryOf(chrootBaseDir, execFileName, jailerId);
        RootDir = Path.Combine(Directory, "root");
    }

    /// <summary>The jailer id the tree is named after.</summary>
    public string Id { get; }

    /// <summary>Owner of everything Firecracker opens or creates here.</summary>
    public uint Uid { get; }

    /// <summary>Group of everything Firecracker opens or creates here.</summary>
    public uint Gid { get; }

    /// <summary>How files reach the jail.</summary>
    public DriveExposePolicy Policy { get; }

    /// <summary><c>&lt;base&gt;/&lt;exec file name&gt;/&lt;jailer id&gt;</c>, removed whole at the end.</summary>
    public string Directory { get; }

    /// <summary><c>&lt;base&gt;/&lt;exec file name&gt;/&lt;jailer id&gt;/root</c>: what Firecracker sees as <c>/</c>.</summary>
    public string RootDir { get; }

    /// <summary>The jailer's directory for <paramref name="jailerId"/>: it builds the chroot in its <c>root</c>.</summary>
    public static string JailDirectoryOf(string chrootBaseDir, string execFileName, string jailerId)
    {
        if (execFileName.Length == 0 || execFileName.Contains('/', StringComparison.Ordinal) || execFileName is "." or "..")
        {
            throw new ArgumentException($"exec file name \"{execFileName}\" cannot name a jail directory under {chrootBaseDir}", nameof(execFileName));
        }

        return Path.Combine(Path.GetFullPath(chrootBaseDir), execFileName, jailerId);
    }

    /// <summary>Name of drive <paramref name="driveId"/>'s backing file inside the jail at patch <paramref name="generation"/> (0 at boot).</summary>
    public static string DriveName(string driveId, int generation = 0) =>
        generation == 0 ? "drive_" + driveId : $"drive_{driveId}-{generation}";

    /// <summary>Host path of <paramref name="pathInJail"/> (absolute inside the jail, or relative to its root).</summary>
    public string HostPath(string pathInJail) => HostPathIn(RootDir, pathInJail);

    /// <summary>Host path of <paramref name="pathInJail"/> in the jail whose root is <paramref name="rootDir"/>; one that escapes it is refused.</summary>
    public static string HostPathIn(string rootDir, string pathInJail)
    {
        var full = Path.GetFullPath(Path.Combine(rootDir, pathInJail.TrimStart('/')));
        return full.StartsWith(rootDir + "/", StringComparison.Ordinal) || full == rootDir
            ? full
            : throw new ArgumentException($"path \"{pathInJail}\" escapes the jail {rootDir}", nameof(pathInJail));
    }

    /// <summary>
    /// Removes what an earlier run left (its mounts first), then makes the root owned by the jail's uid; under
    /// <see cref="DriveExposePolicy.Bind"/> the root becomes a shared mount, so drives bound after the start reach the jail.
    /// </summary>
    public void Create()
    {
        Clear(Directory);
        try
        {
            System.IO.Directory.CreateDirectory(RootDir);
            Interop.Chown(RootDir, Uid, Gid);
            if (Policy == DriveExposePolicy.Bind)
            {
                JailMounts.MakeSharedMountPoint(RootDir);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Clear(Directory);
            throw new IOException($"jailer id {Id}: cannot make the jail {RootDir}: {e.Message}", e);
        }
    }

    /// <summary>Puts <paramref name="hostPath"/> into the jail as <paramref name="name"/> by the policy; returns its path inside the jail.</summary>
    public string StageFile(string hostPath, string name, bool readOnly)
    {
        if (name.Contains('/', StringComparison.Ordinal) || name is "" or "." or "..")
        {
            throw new ArgumentException($"jail file name \"{name}\" for jailer id {Id} must be a plain file name", nameof(name));
        }

        string source = Path.GetFullPath(hostPath);
        string target = Path.Combine(RootDir, name);
        try
        {
            if (Policy == DriveExposePolicy.Bind)
            {
                Bind(source, target, readOnly);
            }
            else
            {
                Copy(source, target);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"jailer id {Id}: {Policy.ToString().ToLowerInvariant()} {source} into the jail as {target}: {e.Message}", e);
        }

        return "/" + name;
    }

    /// <summary>Stages a new backing file for drive <paramref name="driveId"/> under a name of its own; <see cref="CommitDrive"/> or <see cref="Discard"/> it after the patch.</summary>
    public string StageDrive(string driveId, string hostPath, bool readOnly)
    {
        int generation;
        lock (_gate)
        {
            generation = _drives.TryGetValue(driveId, out var current) ? current.Generation + 1 : 0;
            _drives[driveId] = (current.Path, generation);
        }

        return StageFile(hostPath, DriveName(driveId, generation), readOnly);
    }

    /// <summary>Makes <paramref name="pathInJail"/> drive <paramref name="driveId"/>'s file and removes the one it replaces.</summary>
    public void CommitDrive(string driveId, string pathInJail)
    {
        string? previous;
        lock (_gate)
        {
            previous = _drives.TryGetValue(driveId, out var current) ? current.Path : null;
            _drives[driveId] = (pathInJail, current.Generation);
        }

        if (previous is not null && previous != pathInJail)
        {
            Discard(previous);
        }
    }

    /// <summary>Removes a staged file (unmounting it under the bind policy); Firecracker keeps any descriptor it still has.</summary>
    public void Discard(string pathInJail)
    {
        string path = HostPath(pathInJail);
        if (Policy == DriveExposePolicy.Bind)
        {
            JailMounts.Unmount(path);
        }

        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Still a mount point somewhere (EBUSY): it goes with the jail at the end.
        }
    }

    /// <summary>Stages the kernel, initrd and drives of <paramref name="spec"/> and returns the spec with paths as seen inside the jail.</summary>
    public MachineSpec StageSpec(MachineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var boot = spec.Boot with
        {
            KernelImagePath = StageFile(spec.Boot.KernelImagePath, KernelName, readOnly: true),
            InitrdPath = spec.Boot.InitrdPath is null ? null : StageFile(spec.Boot.InitrdPath, InitrdName, readOnly: true),
        };
        var drives = ImmutableArray.CreateBuilder<Drive>(spec.Drives.Length);
        foreach (Drive drive in spec.Drives)
        {
            string staged = StageDrive(drive.DriveId, drive.HostPath, drive.IsReadOnly);
            CommitDrive(drive.DriveId, staged);
            drives.Add(drive with { HostPath = staged });
        }

        return spec with { Boot = boot, Drives = drives.MoveToImmutable() };
    }

    /// <summary>Makes a FIFO inside the jail named <paramref name="name"/> that the jailed Firecracker can open; returns its host path.</summary>
    public string CreateFifo(string name)
    {
        var path = HostPath(name);
        FirecrackerContainerd.Core.Fifo.Create(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Interop.Chown(path, Uid, Gid);
        return path;
    }

    /// <summary>Unmounts everything in the jail and removes its directory; call once Firecracker is gone.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Clear(Directory);
        }
    }

    /// <summary>Removes the jail directory <paramref name="directory"/>: every mount at or below it first (a crashed shim's binds outlive it), then the files.</summary>
    public static void Clear(string directory)
    {
        JailMounts.UnmountAllUnder(directory);
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    // A true copy, sparse as its source, owned by the VM; renamed into place so the name never shows a partial file.
    private void Copy(string source, string target)
    {
        var temp = target + ".staging";
        File.Delete(temp);
        SparseFileCopy.Copy(source, temp);
        Interop.Chown(temp, Uid, Gid);
        File.Move(temp, target, overwrite: true);
    }

    // The host file itself on a placeholder. A writable drive is the VM's to write, so it becomes the VM's uid's; a
    // read-only one (possibly shared by every VM) keeps its owner and must be readable by the VM's uid.
    private void Bind(string source, string target, bool readOnly)
    {
        if (!File.Exists(source))
        {
            throw new FileNotFoundException($"{source} does not exist", source);
        }

        // Never an existing name: opening a mount point for writing would truncate the file bound there.
        File.Open(target, FileMode.CreateNew, FileAccess.Write).Dispose();

        if (!readOnly)
        {
            Interop.Chown(source, Uid, Gid);
        }

        try
        {
            JailMounts.BindFile(source, target, readOnly);
        }
        catch
        {
            File.Delete(target);
            throw;
        }
    }
}
