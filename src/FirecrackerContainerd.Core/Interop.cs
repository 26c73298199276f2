using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Core;

/// <summary>The VM directory layer's use of libc (FIFOs, symlinks, realpath) in Go's error style, over <see cref="Libc"/>.</summary>
internal static partial class Interop
{
    internal const int ENXIO = 6;
    internal const int EEXIST = 17;

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MkfifoNative(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "symlink", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SymlinkNative(string target, string linkPath);

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial nint RealpathNative(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint ptr);

    /// <summary>mkfifo(3); the error names the path, as Go's *PathError does.</summary>
    internal static int Mkfifo(string path, UnixFileMode mode)
    {
        return MkfifoNative(path, (uint)mode) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>open(2) retried on EINTR; returns the fd, or -errno.</summary>
    internal static int Open(string path, int flags, UnixFileMode mode = 0)
    {
        while (true)
        {
            int fd = Libc.Open(path, flags | Libc.O_CLOEXEC, (uint)mode);
            if (fd >= 0)
            {
                return fd;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno != Libc.EINTR)
            {
                return -errno;
            }
        }
    }

    internal static int Symlink(string target, string linkPath)
    {
        return SymlinkNative(target, linkPath) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>realpath(3): the path with every symlink resolved (Go's filepath.EvalSymlinks).</summary>
    internal static string Realpath(string path)
    {
        nint resolved = RealpathNative(path, 0);
        if (resolved == 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new UnixIOException(errno, $"lstat {path}: {ErrnoText(errno)}");
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved)!;
        }
        finally
        {
            Free(resolved);
        }
    }

    /// <summary>strerror text in Go's spelling (lower-case first letter, as syscall.Errno prints).</summary>
    internal static string ErrnoText(int errno)
    {
        string text = Marshal.GetPInvokeErrorMessage(errno);
        return text.Length > 0 ? char.ToLowerInvariant(text[0]) + text[1..] : $"errno {errno}";
    }
}

/// <summary>An I/O error from a system call, keeping its errno for callers that branch on it.</summary>
public sealed class UnixIOException : IOException
{
    /// <summary>Creates the exception for <paramref name="errno"/> with a message that names the call and path.</summary>
    public UnixIOException(int errno, string message)
        : base(message)
    {
        Errno = errno;
    }

    /// <summary>The errno value the call failed with.</summary>
    public int Errno { get; }
}
