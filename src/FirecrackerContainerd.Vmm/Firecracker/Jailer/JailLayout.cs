using System.Collections.Immutable;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>The chroot tree the jailer gives Firecracker, and the staging of a machine's files into it.</summary>
/// <remarks>
/// Inside the jail Firecracker sees only <see cref="RootDir"/> (as <c>/</c>, its working directory), so
/// the kernel, initrd and drive files are hard-linked into it (copied when they live on another file
/// system, where link(2) fails with EXDEV) and owned by the jail's uid/gid. Sockets and FIFOs are
/// named relative to the root, so the same relative names work inside and, joined to
/// <see cref="RootDir"/>, outside.
/// </remarks>
internal sealed class JailLayout
{
    /// <summary>Name of the kernel inside the jail.</summary>
    public const string KernelName = "kernel";

    /// <summary>Name of the initrd inside the jail.</summary>
    public const string InitrdName = "initrd";

    private readonly JailerOptions _options;

    /// <summary>Describes the jail of machine <paramref name="vmId"/> running <paramref name="firecrackerBinary"/>.</summary>
    public JailLayout(JailerOptions options, string vmId, string firecrackerBinary)
    {
        ArgumentNullException.ThrowIfNull(options);
        JailerCommand.ValidateId(vmId);
        _options = options;
        VmId = vmId;
        RootDir = Path.Combine(options.ChrootBaseDir, Path.GetFileName(firecrackerBinary), vmId, "root");
    }

    /// <summary>The machine this jail is for.</summary>
    public string VmId { get; }

    /// <summary><c>&lt;base&gt;/&lt;exec file name&gt;/&lt;vm id&gt;/root</c>: what Firecracker sees as <c>/</c>.</summary>
    public string RootDir { get; }

    /// <summary>Name of drive <paramref name="driveId"/>'s backing file inside the jail.</summary>
    public static string DriveName(string driveId) => "drive_" + driveId;

    /// <summary>Host path of <paramref name="pathInJail"/> (absolute inside the jail, or relative to its root).</summary>
    public string HostPath(string pathInJail)
    {
        var relative = pathInJail.TrimStart('/');
        var full = Path.GetFullPath(Path.Combine(RootDir, relative));
        return full.StartsWith(RootDir + "/", StringComparison.Ordinal) || full == RootDir
            ? full
            : throw new ArgumentException($"path \"{pathInJail}\" escapes the jail {RootDir} of vm \"{VmId}\"", nameof(pathInJail));
    }

    /// <summary>Creates the root directory, owned by the jail's uid/gid.</summary>
    public void Create()
    {
        Directory.CreateDirectory(RootDir);
        Interop.Chown(RootDir, _options.Uid, _options.Gid);
    }

    /// <summary>Links (or copies) <paramref name="hostPath"/> into the jail as <paramref name="name"/>, replacing what was there; returns its path inside the jail.</summary>
    public string StageFile(string hostPath, string name)
    {
        if (name.Contains('/', StringComparison.Ordinal) || name is "" or "." or "..")
        {
            throw new ArgumentException($"jail file name \"{name}\" for vm \"{VmId}\" must be a plain file name", nameof(name));
        }

        var target = Path.Combine(RootDir, name);
        var temp = target + ".staging";
        File.Delete(temp);
        var errno = Interop.TryHardLink(hostPath, temp);
        if (errno == Interop.EXDEV)
        {
            File.Copy(hostPath, temp);
        }
        else if (errno != 0)
        {
            throw new IOException($"link {hostPath} into the jail of vm \"{VmId}\" as {temp}: {Interop.ErrnoText(errno)}", errno);
        }

        Interop.Chown(temp, _options.Uid, _options.Gid);
        File.Move(temp, target, overwrite: true);
        return "/" + name;
    }

    /// <summary>Stages the kernel, initrd and drives of <paramref name="spec"/> and returns the spec with paths as seen inside the jail.</summary>
    public MachineSpec StageSpec(MachineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var boot = spec.Boot with
        {
            KernelImagePath = StageFile(spec.Boot.KernelImagePath, KernelName),
            InitrdPath = spec.Boot.InitrdPath is null ? null : StageFile(spec.Boot.InitrdPath, InitrdName),
        };
        var drives = spec.Drives.Select(d => d with { HostPath = StageFile(d.HostPath, DriveName(d.DriveId)) }).ToImmutableArray();
        return spec with { Boot = boot, Drives = drives };
    }

    /// <summary>Makes a FIFO inside the jail named <paramref name="name"/> that the jailed Firecracker can open; returns its host path.</summary>
    public string CreateFifo(string name)
    {
        var path = HostPath(name);
        FirecrackerContainerd.Core.Fifo.Create(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Interop.Chown(path, _options.Uid, _options.Gid);
        return path;
    }
}
