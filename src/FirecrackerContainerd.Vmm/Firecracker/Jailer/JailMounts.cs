using System.Runtime.InteropServices;
using System.Text;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>The bind mounts of the <see cref="DriveExposePolicy.Bind"/> policy, and finding and removing every mount under a jail.</summary>
internal static partial class JailMounts
{
    private const ulong MS_RDONLY = 0x1;
    private const ulong MS_NOSUID = 0x2;
    private const ulong MS_NODEV = 0x4;
    private const ulong MS_REMOUNT = 0x20;
    private const ulong MS_BIND = 0x1000;
    private const ulong MS_SHARED = 1 << 20;
    private const int MNT_DETACH = 2;
    private const int EINVAL = 22;
    private const int ENOENT = 2;

    /// <summary>How many mounts one clean-up removes at most: binds can be stacked, but not without bound.</summary>
    private const int MaxMountsToRemove = 4096;

    /// <summary>Binds <paramref name="source"/> onto the existing file <paramref name="target"/>, <c>nosuid,nodev</c>, read-only when <paramref name="readOnly"/>.</summary>
    public static void BindFile(string source, string target, bool readOnly)
    {
        Libc.Check(Libc.Mount(source, target, null, MS_BIND, null), "mount --bind", $"{source} on {target}");
        // A bind takes its flags only from a remount of the new mount point.
        ulong flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (readOnly ? MS_RDONLY : 0);
        if (Libc.Mount(null, target, null, flags, null) != 0)
        {
            ErrnoException e = Libc.Error("mount -o remount,bind", target);
            _ = Libc.Umount2(target, MNT_DETACH);
            throw e;
        }
    }

    /// <summary>
    /// Makes <paramref name="directory"/> a mount of its own whose later submounts propagate: the jailer's mount
    /// namespace copies it as a slave, so a drive bound here after Firecracker started reaches Firecracker too.
    /// </summary>
    public static void MakeSharedMountPoint(string directory)
    {
        Libc.Check(Libc.Mount(directory, directory, null, MS_BIND, null), "mount --bind", directory);
        if (Libc.Mount(null, directory, null, MS_SHARED, null) != 0)
        {
            ErrnoException e = Libc.Error("mount --make-shared", directory);
            _ = Libc.Umount2(directory, MNT_DETACH);
            throw e;
        }
    }

    /// <summary>Detaches one mount at <paramref name="target"/>; none there is fine.</summary>
    public static void Unmount(string target)
    {
        if (Libc.Umount2(target, MNT_DETACH) != 0 && Marshal.GetLastPInvokeError() is not (EINVAL or ENOENT))
        {
            throw Libc.Error("umount", target);
        }
    }

    /// <summary>Detaches every mount at or below <paramref name="directory"/>, deepest first and stacked ones one by one.</summary>
    public static void UnmountAllUnder(string directory, string mountInfo = "/proc/self/mountinfo")
    {
        for (int removed = 0; removed < MaxMountsToRemove; removed++)
        {
            string? deepest = Under(directory, mountInfo).OrderByDescending(p => p.Length).FirstOrDefault();
            if (deepest is null)
            {
                return;
            }

            Libc.Check(Libc.Umount2(deepest, MNT_DETACH), "umount", deepest);
        }

        throw new IOException($"umount under {directory}: more than {MaxMountsToRemove} mounts, giving up");
    }

    /// <summary>The mount points at or below <paramref name="directory"/>, as <paramref name="mountInfo"/> lists them.</summary>
    public static IReadOnlyList<string> Under(string directory, string mountInfo = "/proc/self/mountinfo")
    {
        // mountinfo names mount points with every link resolved (a base under /var/run is listed under /run).
        string prefix = Canonical(directory).TrimEnd('/');
        var found = new List<string>();
        foreach (string line in File.ReadLines(mountInfo))
        {
            // mountinfo(5): id parent major:minor root mount-point options ...
            string[] fields = line.Split(' ');
            if (fields.Length > 4)
            {
                string point = Unescape(fields[4]);
                if (point == prefix || point.StartsWith(prefix + "/", StringComparison.Ordinal))
                {
                    found.Add(point);
                }
            }
        }

        return found;
    }

    // realpath(3) of an existing path; a missing one has no mounts below it and stays as it is.
    private static string Canonical(string path)
    {
        nint resolved = RealPath(path, 0);
        if (resolved == 0)
        {
            return path;
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved) ?? path;
        }
        finally
        {
            Free(resolved);
        }
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);

    // The kernel writes space, tab, newline and backslash in a mount point as \ and three octal digits.
    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var text = new StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && IsOctal(field.AsSpan(i + 1, 3)))
            {
                text.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                text.Append(field[i]);
            }
        }

        return text.ToString();
    }

    private static bool IsOctal(ReadOnlySpan<char> digits)
    {
        foreach (char c in digits)
        {
            if (c is < '0' or > '7')
            {
                return false;
            }
        }

        return true;
    }
}
