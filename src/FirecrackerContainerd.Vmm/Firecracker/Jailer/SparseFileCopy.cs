using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;
using Microsoft.Win32.SafeHandles;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>Copies a file's data extents only, so a sparse drive (a 16 GiB layer-slot stub holds a few blocks) stays sparse in the jail.</summary>
internal static partial class SparseFileCopy
{
    private const int SEEK_DATA = 3;
    private const int SEEK_HOLE = 4;
    private const int ENXIO = 6;
    private const int BufferBytes = 1 << 20;

    /// <summary>Copies <paramref name="source"/> to the new file <paramref name="target"/> (which must not exist) with the same length and holes.</summary>
    public static void Copy(string source, string target)
    {
        using SafeFileHandle from = File.OpenHandle(source, FileMode.Open, FileAccess.Read);
        using SafeFileHandle to = File.OpenHandle(target, FileMode.CreateNew, FileAccess.Write);
        long length = RandomAccess.GetLength(from);
        byte[] buffer = new byte[(int)Math.Min(BufferBytes, Math.Max(length, 1))];
        long offset = 0;
        while (offset < length)
        {
            long data = Seek(from, offset, SEEK_DATA, source);
            if (data < 0)
            {
                break; // only a hole remains
            }

            long hole = Seek(from, data, SEEK_HOLE, source);
            hole = hole < 0 ? length : Math.Min(hole, length);
            for (long at = data; at < hole;)
            {
                int read = RandomAccess.Read(from, buffer.AsSpan(0, (int)Math.Min(buffer.Length, hole - at)), at);
                if (read == 0)
                {
                    throw new IOException($"copy {source} to {target}: the file shrank at offset {at} while it was copied");
                }

                RandomAccess.Write(to, buffer.AsSpan(0, read), at);
                at += read;
            }

            offset = hole;
        }

        RandomAccess.SetLength(to, length);
    }

    // lseek(2) for SEEK_DATA/SEEK_HOLE: -1 when no data follows (ENXIO). Linux answers both on every file system (one without holes reports a single extent).
    private static long Seek(SafeFileHandle file, long offset, int whence, string path)
    {
        long result = LSeek((int)file.DangerousGetHandle(), offset, whence);
        if (result >= 0)
        {
            return result;
        }

        int errno = Marshal.GetLastPInvokeError();
        return errno switch
        {
            ENXIO => -1,
            _ => throw new ErrnoException("lseek", path, errno),
        };
    }

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(int fd, long offset, int whence);
}
