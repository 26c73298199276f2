using System.Collections.Immutable;
using FirecrackerContainerd.Protos.Containerd.Types;

namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>
/// A container's rootfs made by containerd's erofs snapshotter (2.1+): read-only EROFS layer files, each
/// <c>snapshots/&lt;id&gt;/layer.erofs</c> beside the <c>fs</c> directory containerd mounts it on, under an overlay.
/// The VM takes each layer file as a read-only drive and stacks them with overlayfs in the guest, so nothing is copied.
/// </summary>
public sealed record RootfsErofsLayers
{
    /// <summary>The file name of a committed layer beside its mount point, as the erofs snapshotter names it.</summary>
    public const string LayerFileName = "layer.erofs";

    // The overlay options that say nothing the guest's overlay must honour: the host's own flags, and what the
    // snapshotter's ovl_mount_options commonly adds.
    private static readonly ImmutableHashSet<string> OverlayFlags = ImmutableHashSet.Create(
        StringComparer.Ordinal, "ro", "rw", "index=off", "volatile", "nosuid", "nodev", "noexec", "relatime", "noatime");

    private RootfsErofsLayers(ImmutableArray<string> layers) => Layers = layers;

    /// <summary>The layer files, top layer first (containerd's lowerdir order).</summary>
    public ImmutableArray<string> Layers { get; }

    /// <summary>
    /// The layer files of <paramref name="mounts"/> when the erofs snapshotter made them, or null when they are
    /// something else (copied instead). They are the snapshotter's when they are one <c>erofs</c> loop mount of a layer
    /// file (a view of a one-layer image), or one overlay whose lowerdirs are directories with a
    /// <see cref="LayerFileName"/> beside them. An overlay whose upper directory is not empty is not taken either
    /// (null): containerd wrote into the snapshot before the task was created, and only a copy carries that along.
    /// Throws <see cref="InvalidRootfsException"/> naming the mount when such mounts cannot be attached safely: a
    /// relative path or one with <c>.</c> or <c>..</c>, an unknown option, a lowerdir without its layer file, or a
    /// layer file that is not a regular file.
    /// </summary>
    public static RootfsErofsLayers? TryParse(IReadOnlyList<Mount> mounts)
    {
        ArgumentNullException.ThrowIfNull(mounts);
        if (mounts.Count != 1)
        {
            return null;
        }

        Mount mount = mounts[0];
        return mount.Type switch
        {
            "erofs" => ParseLayerMount(mount),
            "overlay" => ParseOverlay(mount),
            _ => null,
        };
    }

    private static RootfsErofsLayers ParseLayerMount(Mount mount)
    {
        foreach (string option in mount.Options)
        {
            if (option is not ("ro" or "loop"))
            {
                throw new InvalidRootfsException($"rootfs: erofs mount of {mount.Source}: option \"{option}\" is not supported");
            }
        }

        CheckPath(mount.Source, "erofs mount source");
        CheckLayerFile(mount.Source, "erofs mount source");
        return new RootfsErofsLayers([mount.Source]);
    }

    private static RootfsErofsLayers? ParseOverlay(Mount mount)
    {
        string[]? lower = null;
        string? upper = null;
        string? unknown = null;
        foreach (string option in mount.Options)
        {
            int eq = option.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? option : option[..eq];
            string value = eq < 0 ? string.Empty : option[(eq + 1)..];
            switch (key)
            {
                case "lowerdir" when lower is null:
                    lower = value.Split(':');
                    break;
                case "upperdir" when upper is null:
                    upper = value;
                    break;
                case "workdir":
                    break;
                default:
                    unknown ??= OverlayFlags.Contains(option) ? null : option;
                    break;
            }
        }

        // Another snapshotter's overlay is RootfsSource's to check for the copy.
        if (!IsErofsOverlay(lower))
        {
            return null;
        }

        if (unknown is not null)
        {
            throw new InvalidRootfsException($"rootfs: erofs overlay mount: option \"{unknown}\" is not supported");
        }

        var layers = ImmutableArray.CreateBuilder<string>(lower!.Length);
        foreach (string dir in lower)
        {
            CheckPath(dir, "erofs overlay lowerdir");
            string file = Path.Combine(Path.GetDirectoryName(dir)!, LayerFileName);
            CheckLayerFile(file, $"erofs overlay lowerdir {dir}");
            layers.Add(file);
        }

        if (upper is not null)
        {
            CheckPath(upper, "erofs overlay upperdir");
            if (Directory.Exists(upper) && Directory.EnumerateFileSystemEntries(upper).Any())
            {
                return null;
            }
        }

        return new RootfsErofsLayers(layers.ToImmutable());
    }

    // The snapshotter mounts each layer file on the fs directory beside it; any lowerdir with a layer file beside it
    // makes the overlay the snapshotter's, and then every lowerdir must have one.
    private static bool IsErofsOverlay(string[]? lower) =>
        lower is not null && lower.Any(dir => dir.Length > 0 && dir[0] == '/' && Path.GetDirectoryName(dir) is { } parent
            && File.Exists(Path.Combine(parent, LayerFileName)));

    private static void CheckPath(string path, string what)
    {
        if (path.Length == 0 || path[0] != '/')
        {
            throw new InvalidRootfsException($"rootfs: {what} \"{path}\" is not an absolute path");
        }

        if (RootfsPath.HasDotSegment(path) || path.Any(char.IsControl))
        {
            throw new InvalidRootfsException($"rootfs: {what} \"{path}\" contains . or .. components or control characters");
        }
    }

    private static void CheckLayerFile(string file, string what)
    {
        if (!RootfsPath.IsRegularFile(file))
        {
            throw new InvalidRootfsException($"rootfs: {what}: layer file {file} is missing or not a regular file");
        }
    }
}
