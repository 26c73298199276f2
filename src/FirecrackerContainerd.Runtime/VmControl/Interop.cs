using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>The libc calls of the control API: what kind of file a request names.</summary>
internal static unsafe partial class Interop
{
    private const int AT_FDCWD = -100;
    private const uint STATX_TYPE = 1;
    private const int S_IFMT = 0xF000;

    /// <summary>struct statx is 256 bytes; its u16 stx_mode is at byte 28 on every architecture.</summary>
    private const int StatxBytes = 256;
    private const int StatxModeOffset = 28;

    /// <summary>The S_IFMT bits of <paramref name="path"/> (symbolic links followed): 0x8000 a regular file, 0x6000 a block device.</summary>
    internal static int FileType(string path)
    {
        byte* buffer = stackalloc byte[StatxBytes];
        if (statx(AT_FDCWD, path, 0, STATX_TYPE, buffer) != 0)
        {
            throw Libc.Error("statx", path);
        }

        return *(ushort*)(buffer + StatxModeOffset) & S_IFMT;
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
