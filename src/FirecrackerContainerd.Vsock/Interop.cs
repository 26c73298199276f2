using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vsock;

/// <summary>The Linux calls only the vsock device makes (mapping guest memory, probing a socket file); the common ones are <see cref="Libc"/>'s.</summary>
internal static unsafe partial class Interop
{
    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int MAP_SHARED = 1;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint addr, nuint length);

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LStat(string path, byte* statBuffer);

    /// <summary>Whether <paramref name="path"/> is a socket; null when nothing is there.</summary>
    public static bool? IsSocket(string path)
    {
        // struct stat on x86_64 is 144 bytes; st_mode is the u32 at offset 24.
        byte* buffer = stackalloc byte[256];
        if (LStat(path, buffer) != 0)
        {
            return null;
        }
        const uint fileTypeMask = 0xF000;
        const uint socketType = 0xC000;
        return (*(uint*)(buffer + 24) & fileTypeMask) == socketType;
    }

    /// <summary>Maps a shared memory file (a guest RAM region) read-write.</summary>
    public static nint MapShared(int fd, ulong length, string subject)
    {
        nint address = Mmap(0, (nuint)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (address == -1)
        {
            throw Libc.Error("mmap", subject);
        }
        return address;
    }
}
