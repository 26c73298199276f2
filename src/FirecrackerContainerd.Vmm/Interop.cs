using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vmm;

/// <summary>
/// The VMM drivers' use of libc (FIFOs, poll, signals, links, the KVM probe): retries on EINTR and errno turned into
/// exceptions, over <see cref="Libc"/>'s calls; link and chown are the drivers' own.
/// </summary>
internal static partial class Interop
{
    internal const int EEXIST = 17;
    internal const int EXDEV = 18;
    internal const int ESRCH = 3;

    internal const short POLLOUT = 0x4;
    internal const short POLLERR = 0x8;
    internal const short POLLHUP = 0x10;
    internal const short POLLNVAL = 0x20;

    internal const int SIGKILL = 9;
    internal const int SIGTERM = 15;

    /// <summary>Opens <paramref name="path"/> (always close-on-exec, retried on Libc.EINTR); throws naming the path.</summary>
    internal static int Open(string path, int flags, UnixFileMode mode = 0)
    {
        while (true)
        {
            var fd = Libc.Open(path, flags | Libc.O_CLOEXEC, (uint)mode);
            if (fd >= 0)
            {
                return fd;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Libc.EINTR)
            {
                throw Error("open", path, errno);
            }
        }
    }

    /// <summary>Like <see cref="Open"/> but returns -errno instead of throwing (for probes that expect failure).</summary>
    internal static int TryOpen(string path, int flags)
    {
        var fd = Libc.Open(path, flags | Libc.O_CLOEXEC, 0);
        return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
    }

    /// <summary>link(2); returns 0 or errno so callers can fall back to a copy on EXDEV.</summary>
    internal static int TryHardLink(string existing, string newPath) =>
        LinkNative(existing, newPath) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>chown(2), naming the path on failure.</summary>
    /// <summary>lchown(2): a symbolic link at <paramref name="path"/> is changed itself, never what it points at.</summary>
    internal static void Chown(string path, uint uid, uint gid)
    {
        if (LchownNative(path, uid, gid) != 0)
        {
            throw Error("lchown", path, Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>read(2) retried on Libc.EINTR; returns bytes read, 0 at end of file, or -Libc.EAGAIN when nothing is there.</summary>
    internal static unsafe int Read(int fd, Span<byte> buffer, string path)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var n = Libc.Read(fd, p, (nuint)buffer.Length);
                if (n >= 0)
                {
                    return (int)n;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EAGAIN)
                {
                    return -Libc.EAGAIN;
                }

                if (errno != Libc.EINTR)
                {
                    throw Error("read", path, errno);
                }
            }
        }
    }

    /// <summary>write(2) retried on Libc.EINTR; returns bytes written or -Libc.EAGAIN when the other end is full.</summary>
    internal static unsafe int Write(int fd, ReadOnlySpan<byte> buffer, string path)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var n = Libc.Write(fd, p, (nuint)buffer.Length);
                if (n >= 0)
                {
                    return (int)n;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EAGAIN)
                {
                    return -Libc.EAGAIN;
                }

                if (errno != Libc.EINTR)
                {
                    throw Error("write", path, errno);
                }
            }
        }
    }

    /// <summary>poll(2) retried on Libc.EINTR; returns the number of ready entries (0 on timeout).</summary>
    internal static unsafe int Poll(Span<Libc.PollFd> fds, int timeoutMs, string what)
    {
        fixed (Libc.PollFd* p = fds)
        {
            while (true)
            {
                var n = Libc.Poll(p, (nuint)fds.Length, timeoutMs);
                if (n >= 0)
                {
                    return n;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != Libc.EINTR)
                {
                    throw Error("poll", what, errno);
                }
            }
        }
    }

    /// <summary>eventfd(2), non-blocking and close-on-exec: a cheap way to wake a thread sleeping in poll.</summary>
    internal static int EventFd(string what)
    {
        var fd = Libc.EventFd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        return fd >= 0 ? fd : throw Error("eventfd", what, Marshal.GetLastPInvokeError());
    }

    /// <summary>Adds one to an eventfd counter, waking its poller.</summary>
    internal static void Signal(int eventFd, string what)
    {
        Span<byte> one = stackalloc byte[8];
        BitConverter.TryWriteBytes(one, 1UL);
        _ = Write(eventFd, one, what);
    }

    /// <summary>kill(2) by pid; returns false when the process is already gone.</summary>
    internal static bool Kill(int pid, int signal)
    {
        if (Libc.Kill(pid, signal) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno == ESRCH ? false : throw Error("kill", $"pid {pid} signal {signal}", errno);
    }

    /// <summary>ioctl(2) with no argument; returns the result or -errno.</summary>
    internal static int IoctlNoArg(int fd, nuint request)
    {
        var r = Libc.Ioctl(fd, request, 0);
        return r >= 0 ? r : -Marshal.GetLastPInvokeError();
    }

    /// <summary>Moves the calling thread into the network namespace <paramref name="path"/> names (setns(2)).</summary>
    internal static void EnterNetworkNamespace(string path)
    {
        const int cloneNewNet = 0x40000000;
        int fd = Open(path, Libc.O_RDONLY);
        try
        {
            if (Libc.SetNs(fd, cloneNewNet) != 0)
            {
                throw Error("setns", path, Marshal.GetLastPInvokeError());
            }
        }
        finally
        {
            Libc.CloseQuietly(fd);
        }
    }

    /// <summary>unshare(CLONE_NEWPID) for the calling thread: the next child it starts is pid 1 of a new pid namespace.</summary>
    internal static void UnsharePidNamespace()
    {
        if (Libc.Unshare(Libc.CLONE_NEWPID) != 0)
        {
            throw Error("unshare", "CLONE_NEWPID", Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>The errno text the C library gives, for messages.</summary>
    internal static string ErrnoText(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    private static ErrnoException Error(string call, string path, int errno) => new(call, path, errno);

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LinkNative(string existing, string newPath);

    /// <summary>sendmsg(2), for the one caller that attaches a descriptor (QMP's add-fd); returns bytes sent or -1 with errno set.</summary>
    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    internal static unsafe partial nint SendMsg(int fd, Libc.MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "lchown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LchownNative(string path, uint uid, uint gid);
}
