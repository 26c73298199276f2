using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Vmm;

/// <summary>The libc calls the VMM drivers need (FIFOs, poll, signals, links, KVM probe), with errno turned into exceptions.</summary>
internal static partial class Interop
{
    internal const int O_RDONLY = 0x0;
    internal const int O_WRONLY = 0x1;
    internal const int O_RDWR = 0x2;
    internal const int O_NONBLOCK = 0x800;
    internal const int O_CLOEXEC = 0x80000;

    internal const int EINTR = 4;
    internal const int EAGAIN = 11;
    internal const int EEXIST = 17;
    internal const int EXDEV = 18;
    internal const int ESRCH = 3;

    internal const short POLLIN = 0x1;
    internal const short POLLOUT = 0x4;
    internal const short POLLERR = 0x8;
    internal const short POLLHUP = 0x10;
    internal const short POLLNVAL = 0x20;

    internal const int SIGKILL = 9;
    internal const int SIGTERM = 15;

    private const int EFD_CLOEXEC = 0x80000;
    private const int EFD_NONBLOCK = 0x800;

    /// <summary>One entry of poll(2)'s array.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>Opens <paramref name="path"/> (always close-on-exec, retried on EINTR); throws naming the path.</summary>
    internal static int Open(string path, int flags, UnixFileMode mode = 0)
    {
        while (true)
        {
            var fd = OpenNative(path, flags | O_CLOEXEC, (uint)mode);
            if (fd >= 0)
            {
                return fd;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                throw Error("open", path, errno);
            }
        }
    }

    /// <summary>Like <see cref="Open"/> but returns -errno instead of throwing (for probes that expect failure).</summary>
    internal static int TryOpen(string path, int flags)
    {
        var fd = OpenNative(path, flags | O_CLOEXEC, 0);
        return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
    }

    /// <summary>link(2); returns 0 or errno so callers can fall back to a copy on EXDEV.</summary>
    internal static int TryHardLink(string existing, string newPath) =>
        LinkNative(existing, newPath) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>chown(2), naming the path on failure.</summary>
    internal static void Chown(string path, uint uid, uint gid)
    {
        if (ChownNative(path, uid, gid) != 0)
        {
            throw Error("chown", path, Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>read(2) retried on EINTR; returns bytes read, 0 at end of file, or -EAGAIN when nothing is there.</summary>
    internal static unsafe int Read(int fd, Span<byte> buffer, string path)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var n = ReadNative(fd, p, (nuint)buffer.Length);
                if (n >= 0)
                {
                    return (int)n;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == EAGAIN)
                {
                    return -EAGAIN;
                }

                if (errno != EINTR)
                {
                    throw Error("read", path, errno);
                }
            }
        }
    }

    /// <summary>write(2) retried on EINTR; returns bytes written or -EAGAIN when the other end is full.</summary>
    internal static unsafe int Write(int fd, ReadOnlySpan<byte> buffer, string path)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var n = WriteNative(fd, p, (nuint)buffer.Length);
                if (n >= 0)
                {
                    return (int)n;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == EAGAIN)
                {
                    return -EAGAIN;
                }

                if (errno != EINTR)
                {
                    throw Error("write", path, errno);
                }
            }
        }
    }

    /// <summary>poll(2) retried on EINTR; returns the number of ready entries (0 on timeout).</summary>
    internal static unsafe int Poll(Span<PollFd> fds, int timeoutMs, string what)
    {
        fixed (PollFd* p = fds)
        {
            while (true)
            {
                var n = PollNative(p, (nuint)fds.Length, timeoutMs);
                if (n >= 0)
                {
                    return n;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                {
                    throw Error("poll", what, errno);
                }
            }
        }
    }

    /// <summary>eventfd(2), non-blocking and close-on-exec: a cheap way to wake a thread sleeping in poll.</summary>
    internal static int EventFd(string what)
    {
        var fd = EventFdNative(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return fd >= 0 ? fd : throw Error("eventfd", what, Marshal.GetLastPInvokeError());
    }

    /// <summary>Adds one to an eventfd counter, waking its poller.</summary>
    internal static void Signal(int eventFd, string what)
    {
        Span<byte> one = stackalloc byte[8];
        BitConverter.TryWriteBytes(one, 1UL);
        _ = Write(eventFd, one, what);
    }

    /// <summary>close(2); errors are ignored because there is nothing a caller could do.</summary>
    internal static void CloseQuietly(int fd)
    {
        if (fd >= 0)
        {
            _ = CloseNative(fd);
        }
    }

    /// <summary>kill(2) by pid; returns false when the process is already gone.</summary>
    internal static bool Kill(int pid, int signal)
    {
        if (KillNative(pid, signal) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno == ESRCH ? false : throw Error("kill", $"pid {pid} signal {signal}", errno);
    }

    /// <summary>ioctl(2) with no argument; returns the result or -errno.</summary>
    internal static int IoctlNoArg(int fd, nuint request)
    {
        var r = IoctlNative(fd, request, 0);
        return r >= 0 ? r : -Marshal.GetLastPInvokeError();
    }

    /// <summary>The errno text the C library gives, for messages.</summary>
    internal static string ErrnoText(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    private static IOException Error(string call, string path, int errno) =>
        new($"{call} {path}: {ErrnoText(errno)} (errno {errno})", errno);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenNative(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LinkNative(string existing, string newPath);

    [LibraryImport("libc", EntryPoint = "chown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int ChownNative(string path, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint ReadNative(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint WriteNative(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int PollNative(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFdNative(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlNative(int fd, nuint request, nint arg);
}
