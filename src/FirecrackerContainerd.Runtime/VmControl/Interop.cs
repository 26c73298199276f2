using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>The libc calls of the control API: what kind of file a request names.</summary>
internal static class Interop
{
    /// <summary>The S_IFMT bits of <paramref name="path"/> (symbolic links followed): 0x8000 a regular file, 0x6000 a block device.</summary>
    internal static int FileType(string path) => Libc.FileType(Libc.AT_FDCWD, path, 0);
}
