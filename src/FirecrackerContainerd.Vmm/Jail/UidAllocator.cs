using System.Globalization;
using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vmm.Jail;

/// <summary>
/// Hands out one uid per VM from a range, each held by an exclusive <c>flock</c> on <c>&lt;dir&gt;/&lt;uid&gt;.lock</c>
/// for as long as the lease is open. The kernel drops a lock when its holder dies, so a shim killed with SIGKILL
/// frees its uid without anyone cleaning up, and two shims never share one.
/// </summary>
public sealed partial class UidAllocator(string directory, uint start, uint count)
{
    private const int LOCK_EX = 2;
    private const int LOCK_NB = 4;
    private const int EWOULDBLOCK = 11;
    private const int O_CREAT = 0x40;

    /// <summary>The directory holding the lock files.</summary>
    public string Directory => directory;

    /// <summary>Takes the first free uid of the range for <paramref name="vmId"/>; throws naming the range when all are held.</summary>
    public UidLease Acquire(string vmId)
    {
        if (count == 0)
        {
            throw new InvalidOperationException($"vm \"{vmId}\": jail uid range {start}+{count} is empty (jail.uid_range.count is 0)");
        }

        try
        {
            System.IO.Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"vm \"{vmId}\": cannot create the jail uid lock directory {directory}: {e.Message}", e);
        }

        for (uint uid = start; uid - start < count; uid++)
        {
            string path = Path.Combine(directory, uid.ToString(CultureInfo.InvariantCulture) + ".lock");
            int fd = Interop.Open(path, Libc.O_RDWR | O_CREAT, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            if (Flock(fd, LOCK_EX | LOCK_NB) == 0)
            {
                return new UidLease(uid, fd, path);
            }

            int errno = Marshal.GetLastPInvokeError();
            Libc.CloseQuietly(fd);
            if (errno != EWOULDBLOCK)
            {
                throw new ErrnoException("flock", path, errno);
            }
        }

        throw new InvalidOperationException(
            $"vm \"{vmId}\": every uid of the jail range {start}..{start + count - 1} is held by a running VM (locks in {directory}); raise jail.uid_range.count");
    }

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(int fd, int operation);
}

/// <summary>One VM's uid (which is also its gid), held until disposed or until the process holding it dies.</summary>
public sealed class UidLease : IDisposable
{
    private int _fd;

    internal UidLease(uint uid, int fd, string path)
    {
        Uid = uid;
        _fd = fd;
        LockPath = path;
    }

    /// <summary>The uid, and the gid of the same number.</summary>
    public uint Uid { get; }

    /// <summary>The lock file that holds it.</summary>
    public string LockPath { get; }

    /// <summary>Releases the uid (closing the descriptor drops the lock; the file stays for the next VM).</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Libc.CloseQuietly(fd);
        }
    }
}
