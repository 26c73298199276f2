using System.Collections.Immutable;
using FirecrackerContainerd.Protos.Containerd.Types;

namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>
/// A container's rootfs that already is a file system image on the host: the blockfile snapshotter's block file,
/// which containerd would mount with <c>loop</c>. The VM takes the file itself as the container's drive, so the
/// container writes to the snapshot containerd keeps, and nothing is copied.
/// </summary>
public sealed record RootfsBlockFile
{
    /// <summary>The only file system the guest mounts a container's root as.</summary>
    public const string FilesystemType = "ext4";

    // Options the guest's mount honours as they are; "loop" and "rw" only say how the host would have mounted it.
    private static readonly ImmutableHashSet<string> GuestOptions = ImmutableHashSet.Create(
        StringComparer.Ordinal, "noatime", "relatime", "nodiratime", "nosuid", "nodev", "noexec");

    private RootfsBlockFile(string path, ImmutableArray<string> options)
    {
        Path = path;
        Options = options;
    }

    /// <summary>The snapshot's block file on the host.</summary>
    public string Path { get; }

    /// <summary>The options the guest mounts the file system with.</summary>
    public ImmutableArray<string> Options { get; }

    /// <summary>
    /// The block file of <paramref name="mounts"/> when they are one loop mount, or null when they are something
    /// else (a bind or overlay mount, which is copied). A loop mount this runtime cannot attach safely is refused
    /// with <see cref="InvalidRootfsException"/> naming it: another file system than ext4, a read-only snapshot (a
    /// view, whose file may be shared and must never be attached writable), an option the guest cannot honour, or a
    /// source that is not a regular file.
    /// </summary>
    public static RootfsBlockFile? TryParse(IReadOnlyList<Mount> mounts)
    {
        ArgumentNullException.ThrowIfNull(mounts);
        if (mounts.Count != 1 || !mounts[0].Options.Contains("loop"))
        {
            return null;
        }

        Mount mount = mounts[0];
        if (mount.Type != FilesystemType)
        {
            throw new InvalidRootfsException(
                $"rootfs: block file {mount.Source} holds {mount.Type}, and the guest mounts a container's root as {FilesystemType} only (the blockfile snapshotter's fs_type)");
        }

        if (mount.Options.Contains("ro"))
        {
            throw new InvalidRootfsException(
                $"rootfs: block file {mount.Source} is a read-only snapshot (a view); its file may be shared, and container drives are attached writable");
        }

        var options = ImmutableArray.CreateBuilder<string>();
        foreach (string option in mount.Options)
        {
            if (option is "loop" or "rw")
            {
                continue;
            }

            if (!GuestOptions.Contains(option))
            {
                throw new InvalidRootfsException($"rootfs: block file {mount.Source}: mount option \"{option}\" is not supported");
            }

            options.Add(option);
        }

        CheckFile(mount.Source);
        return new RootfsBlockFile(mount.Source, options.ToImmutable());
    }

    private static void CheckFile(string path)
    {
        if (path.Length == 0 || path[0] != '/' || RootfsPath.HasDotSegment(path))
        {
            throw new InvalidRootfsException($"rootfs: block file \"{path}\" is not an absolute path without . or .. components");
        }

        if (!RootfsPath.IsRegularFile(path))
        {
            throw new InvalidRootfsException($"rootfs: block file {path} is not a regular file");
        }
    }
}
