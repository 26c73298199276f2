namespace FirecrackerContainerd.Jail;

/// <summary>
/// Fills the jail's root (a fresh tmpfs, private to the jail's mount namespace) with bind mounts of host paths at the
/// same absolute paths, so that every path on the VMM's command line means the same file inside and out.
/// </summary>
/// <remarks>
/// A symbolic link on the way (<c>/lib64</c>, <c>/lib</c> on a merged-/usr host) is made again inside with the same
/// target, and its target is exposed too: the dynamic loader and the libraries are then found as on the host.
/// A path inside one already bound is left as it is; a directory bound after a file in it covers that file's bind.
/// </remarks>
internal sealed class ChrootBuilder(string root)
{
    private const int MaxLinks = 16;
    private readonly List<string> _bound = [];

    /// <summary>Mounts a small tmpfs on the root: what is made there lives and dies with the jail's mount namespace.</summary>
    public void MountRoot()
    {
        Directory.CreateDirectory(root);
        Syscalls.Mount("tmpfs", root, "tmpfs", Syscalls.MS_NOSUID, "mode=0755,size=1m");
    }

    /// <summary>
    /// Makes device node <paramref name="path"/> inside as the host has it (type, number, permission bits), owned by the
    /// jail's <paramref name="uid"/>: a host node may be root's alone (e.g. <c>/dev/net/tun</c> or <c>/dev/kvm</c> at
    /// 0600), which a bind would leave out of the unprivileged program's reach.
    /// </summary>
    public void MakeDevice(string path, uint uid, uint gid)
    {
        if (new FileInfo(path).LinkTarget is not null)
        {
            throw new IOException($"make device {path}: it is a symbolic link on the host");
        }

        string inside = root + path;
        Directory.CreateDirectory(Path.GetDirectoryName(inside) ?? root);
        Syscalls.MakeDeviceLike(path, inside, uid, gid);
    }

    /// <summary>Binds host <paramref name="path"/> at the same path inside; read-only unless <paramref name="writable"/>.</summary>
    public void Expose(string path, bool writable) => Expose(path, writable, 0);

    private void Expose(string path, bool writable, int depth)
    {
        if (depth > MaxLinks)
        {
            throw new IOException($"expose {path}: more than {MaxLinks} symbolic links");
        }

        string[] parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        string current = string.Empty;
        for (int i = 0; i < parts.Length; i++)
        {
            current += "/" + parts[i];
            string inside = root + current;
            var host = new FileInfo(current);
            if (!host.Exists && !Directory.Exists(current) && host.LinkTarget is null)
            {
                throw new FileNotFoundException($"expose {path}: {current} does not exist on the host", current);
            }

            if (host.LinkTarget is { } target)
            {
                if (!Path.Exists(inside) && new FileInfo(inside).LinkTarget is null)
                {
                    File.CreateSymbolicLink(inside, target);
                }

                string resolved = Path.GetFullPath(target, Path.GetDirectoryName(current) ?? "/");
                string rest = string.Join('/', parts.Skip(i + 1));
                Expose(rest.Length == 0 ? resolved : resolved.TrimEnd('/') + "/" + rest, writable, depth + 1);
                return;
            }

            bool last = i == parts.Length - 1;
            if (!last)
            {
                if (!Directory.Exists(inside))
                {
                    Directory.CreateDirectory(inside);
                }

                continue;
            }

            // A directory made earlier on the way to another path is not yet bound; a path in a bound one is there.
            if (_bound.Any(b => current == b || current.StartsWith(b + "/", StringComparison.Ordinal)))
            {
                return;
            }

            if (Directory.Exists(current))
            {
                Directory.CreateDirectory(inside);
            }
            else if (!File.Exists(inside))
            {
                File.WriteAllBytes(inside, []);
            }

            Syscalls.Mount(current, inside, null, Syscalls.MS_BIND | Syscalls.MS_REC, null);
            _bound.Add(current);
            ulong flags = Syscalls.MS_BIND | Syscalls.MS_REMOUNT | Syscalls.MS_NOSUID | (writable ? 0 : Syscalls.MS_RDONLY) | Syscalls.MS_NODEV;
            Syscalls.Mount(null, inside, null, flags, null);
        }
    }
}
