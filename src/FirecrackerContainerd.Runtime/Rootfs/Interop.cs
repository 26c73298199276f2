using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>The rootfs image builder's mounts of the snapshot view, over <see cref="Libc"/>'s mount and umount2.</summary>
internal static partial class Interop
{
    internal const ulong MS_RDONLY = 0x1;
    internal const ulong MS_NOSUID = 0x2;
    internal const ulong MS_NODEV = 0x4;
    internal const ulong MS_REMOUNT = 0x20;
    internal const ulong MS_BIND = 0x1000;
    internal const ulong MS_PRIVATE = 0x40000;
    internal const int MNT_DETACH = 0x2;
    internal const int EBUSY = 16;
    internal const int EINVAL = 22;

    /// <summary>mount(2); throws an <see cref="IOException"/> naming the call, the source and the target.</summary>
    internal static void Mount(string? source, string target, string? fsType, ulong flags, string? data)
    {
        if (Libc.Mount(source, target, fsType, flags, data) != 0)
        {
            throw Libc.Error("mount", $"{fsType ?? "(bind)"} {source ?? "(none)"} on {target} (flags 0x{flags:x}, data \"{data}\")");
        }
    }

    /// <summary>umount2(2); returns the errno (0 on success) so the caller can decide on a lazy retry.</summary>
    internal static int Unmount(string target, int flags)
    {
        return Libc.Umount2(target, flags) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    internal static string ErrorMessage(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
