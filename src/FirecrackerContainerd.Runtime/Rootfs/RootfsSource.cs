using System.Collections.Immutable;
using FirecrackerContainerd.Protos.Containerd.Types;

namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>
/// containerd's rootfs mounts for one container, checked and reduced to what the image builder needs: the
/// directories whose union is the root file system, topmost first. A bind mount (native snapshotter, or
/// the overlayfs snapshotter's single-layer case) is one directory; an overlay is its upper directory (if
/// any) above its lower directories.
/// </summary>
public sealed record RootfsSource
{
    private static readonly ImmutableHashSet<string> BindOptions = ImmutableHashSet.Create(
        StringComparer.Ordinal, "bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "relatime", "noatime");

    // Flags that only change behaviour of the writable overlay; the read-only view used for copying ignores them.
    private static readonly ImmutableHashSet<string> OverlayFlags = ImmutableHashSet.Create(
        StringComparer.Ordinal, "ro", "rw", "index=off", "volatile", "nosuid", "nodev", "noexec", "relatime", "noatime");

    private RootfsSource(ImmutableArray<string> layers, bool userXattr)
    {
        Layers = layers;
        UserXattr = userXattr;
    }

    /// <summary>The directories to merge, topmost first (one for a bind mount).</summary>
    public ImmutableArray<string> Layers { get; }

    /// <summary>Whether the overlay keeps its whiteouts and opaque markers in user.* xattrs (rootless snapshots).</summary>
    public bool UserXattr { get; }

    /// <summary>True when the layers are merged with overlayfs rather than bound.</summary>
    public bool IsOverlay => Layers.Length > 1 || UserXattr;

    /// <summary>
    /// Checks the mounts of a CreateTaskRequest: exactly one mount, of type bind or overlay, absolute
    /// paths without . or .. and without characters that could split an option string, and only options
    /// known to be harmless. Throws <see cref="InvalidRootfsException"/> naming the offending mount.
    /// </summary>
    public static RootfsSource Parse(IReadOnlyList<Mount> mounts)
    {
        ArgumentNullException.ThrowIfNull(mounts);
        if (mounts.Count != 1)
        {
            throw new InvalidRootfsException(
                $"rootfs: expected exactly one mount, got {mounts.Count} ({string.Join(", ", mounts.Select(m => m.Type))})");
        }

        Mount mount = mounts[0];
        return mount.Type switch
        {
            "bind" => ParseBind(mount),
            "overlay" => ParseOverlay(mount),
            _ => throw new InvalidRootfsException(
                $"rootfs: mount type \"{mount.Type}\" of {mount.Source} is not supported (supported: bind, overlay)"),
        };
    }

    private static RootfsSource ParseBind(Mount mount)
    {
        foreach (string option in mount.Options)
        {
            if (!BindOptions.Contains(option))
            {
                throw new InvalidRootfsException($"rootfs: bind mount of {mount.Source}: option \"{option}\" is not supported");
            }
        }

        CheckPath(mount.Source, "bind mount source");
        return new RootfsSource([mount.Source], userXattr: false);
    }

    private static RootfsSource ParseOverlay(Mount mount)
    {
        string[]? lower = null;
        string? upper = null;
        string? work = null;
        bool userXattr = false;
        foreach (string option in mount.Options)
        {
            int eq = option.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? option : option[..eq];
            string value = eq < 0 ? string.Empty : option[(eq + 1)..];
            switch (key)
            {
                case "lowerdir" when lower is null:
                    lower = value.Split(':');
                    foreach (string dir in lower)
                    {
                        CheckPath(dir, "overlay lowerdir");
                    }

                    break;
                case "upperdir" when upper is null:
                    CheckPath(value, "overlay upperdir");
                    upper = value;
                    break;
                case "workdir" when work is null:
                    CheckPath(value, "overlay workdir");
                    work = value;
                    break;
                case "userxattr" when eq < 0:
                    userXattr = true;
                    break;
                case "lowerdir" or "upperdir" or "workdir":
                    throw new InvalidRootfsException($"rootfs: overlay mount: option {key} is given twice");
                default:
                    if (!OverlayFlags.Contains(option))
                    {
                        throw new InvalidRootfsException($"rootfs: overlay mount: option \"{option}\" is not supported");
                    }

                    break;
            }
        }

        if (lower is null)
        {
            throw new InvalidRootfsException("rootfs: overlay mount has no lowerdir option");
        }

        if ((upper is null) != (work is null))
        {
            throw new InvalidRootfsException("rootfs: overlay mount needs both upperdir and workdir, or neither");
        }

        ImmutableArray<string> layers = upper is null ? [.. lower] : [upper, .. lower];
        if (layers.Distinct(StringComparer.Ordinal).Count() != layers.Length)
        {
            throw new InvalidRootfsException($"rootfs: overlay mount names a directory twice: {string.Join(":", layers)}");
        }

        return new RootfsSource(layers, userXattr);
    }

    // The paths end up in a mount option string where ',' separates options and ':' layers, and '\' escapes.
    private static void CheckPath(string path, string what)
    {
        if (path.Length == 0 || path[0] != '/')
        {
            throw new InvalidRootfsException($"rootfs: {what} \"{path}\" is not an absolute path");
        }

        if (path.Any(c => c is ',' or ':' or '\\' || char.IsControl(c)))
        {
            throw new InvalidRootfsException($"rootfs: {what} \"{path}\" contains a comma, colon, backslash or control character");
        }

        if (RootfsPath.HasDotSegment(path))
        {
            throw new InvalidRootfsException($"rootfs: {what} \"{path}\" contains . or .. components");
        }

        if (!Directory.Exists(path))
        {
            throw new InvalidRootfsException($"rootfs: {what} {path} is not a directory");
        }
    }
}
