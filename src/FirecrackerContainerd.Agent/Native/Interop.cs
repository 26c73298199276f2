using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Agent.Native;

/// <summary>The libc calls the agent needs: spawning and reaping processes, pipes, mounts, ioctls.</summary>
internal static unsafe partial class Interop
{
    internal const int ECHILD = 10;
    internal const uint EPOLLIN = 0x1;
    internal const uint EPOLLOUT = 0x4;
    internal const int PR_SET_CHILD_SUBREAPER = 36;

    // The Linux ABI constants of the terminal calls (asm-generic, shared by x86_64 and arm64).
    private const nuint TIOCSWINSZ = 0x5414;
    private const int F_DUPFD_CLOEXEC = 1030;
    private const int F_GETFL = 3;
    private const int F_SETFL = 4;
    private const int EPOLL_CTL_ADD = 1;
    private const int EPOLL_CTL_DEL = 2;
    private const int EPOLL_CTL_MOD = 3;
    private const uint EPOLLONESHOT = 1u << 30;
    private static readonly int EpollDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;
    private static readonly int EpollEventBytes = EpollDataOffset + 8;

    // struct termios of glibc: four tcflag_t, c_line, then c_cc[32]; VEOF is c_cc[4].
    private const int TermiosBytes = 60;
    private const int TermiosControlCharsOffset = 17;
    private const int VEOF = 4;

    // struct cmsghdr on 64-bit Linux: size_t cmsg_len, int cmsg_level, int cmsg_type, then the data.
    private const int ControlHeaderBytes = 16;

    // posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336 on glibc x86_64/arm64; room to spare.
    private const int SpawnStructBytes = 1024;

    /// <summary>Spawns <paramref name="argv"/>[0] (a path) with the given fds as its stdio; returns its pid.</summary>
    internal static int Spawn(string[] argv, string[] envp, int stdinFd, int stdoutFd, int stderrFd)
    {
        nint actions = Marshal.AllocHGlobal(SpawnStructBytes);
        nint argvBlock = 0;
        nint envBlock = 0;
        try
        {
            Check(posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init", argv[0]);
            try
            {
                Check(posix_spawn_file_actions_adddup2(actions, stdinFd, 0), "posix_spawn_file_actions_adddup2", argv[0]);
                Check(posix_spawn_file_actions_adddup2(actions, stdoutFd, 1), "posix_spawn_file_actions_adddup2", argv[0]);
                Check(posix_spawn_file_actions_adddup2(actions, stderrFd, 2), "posix_spawn_file_actions_adddup2", argv[0]);
                argvBlock = StringArray(argv);
                envBlock = StringArray(envp);
                int pid;
                int rc = posix_spawn(&pid, argv[0], actions, 0, argvBlock, envBlock);
                if (rc != 0)
                {
                    throw new ErrnoException("posix_spawn", argv[0], rc);
                }

                return pid;
            }
            finally
            {
                _ = posix_spawn_file_actions_destroy(actions);
            }
        }
        finally
        {
            FreeStringArray(argvBlock, argv.Length);
            FreeStringArray(envBlock, envp.Length);
            Marshal.FreeHGlobal(actions);
        }
    }

    /// <summary>A pipe whose ends are close-on-exec (spawned children get them only through dup2).</summary>
    internal static (int Read, int Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, Libc.O_CLOEXEC) != 0)
        {
            throw LastError("pipe2", "");
        }

        return (fds[0], fds[1]);
    }

    /// <summary>waitpid(-1) blocking; returns (pid, raw status), or pid -ECHILD when there are no children.</summary>
    internal static (int Pid, int Status) WaitAny()
    {
        while (true)
        {
            int status;
            int pid = waitpid(-1, &status, 0);
            if (pid > 0)
            {
                return (pid, status);
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno == ECHILD)
            {
                return (-ECHILD, 0);
            }

            if (errno != Libc.EINTR)
            {
                throw new ErrnoException("waitpid", null, errno);
            }
        }
    }

    /// <summary>Makes this process adopt orphaned descendants (containers whose runtime process exited).</summary>
    internal static void BecomeSubreaper()
    {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        {
            throw LastError("prctl(PR_SET_CHILD_SUBREAPER)", "");
        }
    }

    internal static bool Kill(int pid, int signal) => Libc.Kill(pid, signal) == 0;

    internal static void Mount(string source, string target, string fsType, ulong flags, string? data)
    {
        if (Libc.Mount(source, target, fsType, flags, data) != 0)
        {
            throw LastError("mount", $"{source} on {target} ({fsType})");
        }
    }

    /// <summary>
    /// Writes the dirty data of the file system mounted at <paramref name="target"/> to its device. An unmount
    /// alone does not when the file system lives on in another mount (a container's bind mount of it).
    /// </summary>
    internal static void SyncFileSystem(string target)
    {
        int fd = Open(target, Libc.O_RDONLY);
        try
        {
            if (syncfs(fd) != 0)
            {
                throw LastError("syncfs", target);
            }
        }
        finally
        {
            Libc.CloseQuietly(fd);
        }
    }

    internal static void Unmount(string target)
    {
        if (Libc.Umount2(target, 0) != 0)
        {
            throw LastError("umount", target);
        }
    }

    /// <summary>ioctl(fd, request, 0); throws naming <paramref name="what"/>.</summary>
    internal static void Ioctl(int fd, nuint request, string what)
    {
        if (Libc.Ioctl(fd, request, 0) != 0)
        {
            throw LastError("ioctl", what);
        }
    }

    /// <summary>ioctl(TIOCSWINSZ): sets a terminal's window size (rows, columns), which signals SIGWINCH to its foreground group.</summary>
    internal static void SetWindowSize(int fd, ushort rows, ushort columns, string what)
    {
        // struct winsize: ws_row, ws_col, ws_xpixel, ws_ypixel (unsigned short each).
        ushort* size = stackalloc ushort[4];
        size[0] = rows;
        size[1] = columns;
        size[2] = 0;
        size[3] = 0;
        if (Libc.Ioctl(fd, TIOCSWINSZ, (nint)size) != 0)
        {
            throw LastError("ioctl(TIOCSWINSZ)", what);
        }
    }

    /// <summary>The terminal's end-of-file character (c_cc[VEOF], ctrl-D unless changed).</summary>
    internal static byte EndOfFileCharacter(int fd, string what)
    {
        byte* termios = stackalloc byte[TermiosBytes];
        if (tcgetattr(fd, termios) != 0)
        {
            throw LastError("tcgetattr", what);
        }

        return termios[TermiosControlCharsOffset + VEOF];
    }

    internal static bool IsTerminal(int fd) => isatty(fd) == 1;

    /// <summary>Sets Libc.O_NONBLOCK on <paramref name="fd"/>'s open file description (every duplicate of it shares the flag).</summary>
    internal static void SetNonBlocking(int fd, string what)
    {
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | Libc.O_NONBLOCK) < 0)
        {
            throw LastError("fcntl(Libc.O_NONBLOCK)", what);
        }
    }

    /// <summary>read(2) on a non-blocking fd: the byte count (0 at end of file), or -1 when nothing is ready (Libc.EAGAIN).</summary>
    internal static int ReadNonBlocking(int fd, Span<byte> buffer, string what)
    {
        fixed (byte* data = buffer)
        {
            nint at = (nint)data;
            int length = buffer.Length;
            return NonBlocking("read", what, () => Libc.Read(fd, (byte*)at, (nuint)length));
        }
    }

    /// <summary>write(2) on a non-blocking fd: the bytes written (possibly fewer than given), or -1 when none fit (Libc.EAGAIN).</summary>
    internal static int WriteNonBlocking(int fd, ReadOnlySpan<byte> buffer, string what)
    {
        fixed (byte* data = buffer)
        {
            nint at = (nint)data;
            int length = buffer.Length;
            return NonBlocking("write", what, () => Libc.Write(fd, (byte*)at, (nuint)length));
        }
    }

    /// <summary>A close-on-exec epoll instance.</summary>
    internal static int EpollCreate()
    {
        int fd = epoll_create1(Libc.O_CLOEXEC);
        return fd >= 0 ? fd : throw LastError("epoll_create1", "");
    }

    /// <summary>
    /// Arms <paramref name="fd"/> in <paramref name="epoll"/> for one readiness report (EPOLLONESHOT) of
    /// <paramref name="events"/>, tagged with <paramref name="data"/>: added the first time, re-armed after.
    /// </summary>
    internal static void EpollArm(int epoll, int fd, uint events, ulong data, string what)
    {
        // struct epoll_event: u32 events then u64 data, packed on x86_64 (12 bytes), naturally aligned elsewhere (16).
        byte* e = stackalloc byte[EpollEventBytes];
        *(uint*)e = events | EPOLLONESHOT;
        *(ulong*)(e + EpollDataOffset) = data;
        if (epoll_ctl(epoll, EPOLL_CTL_MOD, fd, e) == 0)
        {
            return;
        }

        if (Marshal.GetLastPInvokeError() != Libc.ENOENT || epoll_ctl(epoll, EPOLL_CTL_ADD, fd, e) != 0)
        {
            throw LastError("epoll_ctl", what);
        }
    }

    /// <summary>Removes <paramref name="fd"/> from <paramref name="epoll"/>; absent is fine.</summary>
    internal static void EpollRemove(int epoll, int fd)
    {
        byte* unused = stackalloc byte[EpollEventBytes];
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, unused);
    }

    /// <summary>Blocks until fds are ready; fills <paramref name="ready"/> with their tags and returns how many (0 after Libc.EINTR).</summary>
    internal static int EpollWait(int epoll, Span<ulong> ready)
    {
        byte* events = stackalloc byte[EpollEventBytes * ready.Length];
        int n = epoll_wait(epoll, events, ready.Length, -1);
        if (n < 0)
        {
            return Marshal.GetLastPInvokeError() == Libc.EINTR ? 0 : throw LastError("epoll_wait", "");
        }

        for (int i = 0; i < n; i++)
        {
            ready[i] = *(ulong*)(events + (i * EpollEventBytes) + EpollDataOffset);
        }

        return n;
    }

    /// <summary>A close-on-exec duplicate of <paramref name="fd"/>.</summary>
    internal static int Duplicate(int fd, string what)
    {
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        return copy >= 0 ? copy : throw LastError("fcntl(F_DUPFD_CLOEXEC)", what);
    }

    /// <summary>
    /// recvmsg on a Unix socket: up to <paramref name="data"/>.Length bytes and the fds passed with them
    /// (Libc.SCM_RIGHTS, made close-on-exec). Returns the byte count (0 = the peer closed) or -1 with Libc.EAGAIN.
    /// Every fd received is returned, even when the caller wanted fewer, so none leaks.
    /// </summary>
    internal static int ReceiveWithFds(int socket, Span<byte> data, List<int> fds, string what)
    {
        const int MaxFds = 8;
        byte* control = stackalloc byte[ControlHeaderBytes + (MaxFds * sizeof(int))];
        int controlBytes = ControlHeaderBytes + (MaxFds * sizeof(int));
        new Span<byte>(control, controlBytes).Clear();
        fixed (byte* buffer = data)
        {
            Libc.IoVec iov = new() { Base = buffer, Length = (nuint)data.Length };
            Libc.MsgHdr header = new() { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)controlBytes };
            nint n = Libc.RecvMsg(socket, &header, Libc.MSG_CMSG_CLOEXEC);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno is Libc.EAGAIN or Libc.EINTR)
                {
                    return -1;
                }

                throw Error("recvmsg", what, errno);
            }

            // Walk the control messages (each padded to 8 bytes) and keep every fd of every Libc.SCM_RIGHTS one.
            long offset = 0;
            long used = (long)header.ControlLength;
            while (offset + ControlHeaderBytes <= used)
            {
                long length = *(long*)(control + offset);
                int level = *(int*)(control + offset + 8);
                int type = *(int*)(control + offset + 12);
                if (length < ControlHeaderBytes || offset + length > used)
                {
                    break;
                }

                if (level == Libc.SOL_SOCKET && type == Libc.SCM_RIGHTS)
                {
                    for (long at = ControlHeaderBytes; at + sizeof(int) <= length; at += sizeof(int))
                    {
                        fds.Add(*(int*)(control + offset + at));
                    }
                }

                offset += (length + 7) & ~7L;
            }

            if ((header.Flags & Libc.MSG_CTRUNC) != 0)
            {
                throw new IOException($"recvmsg {what}: more fds were passed than expected (control data truncated)");
            }

            return (int)n;
        }
    }

    internal static int Open(string path, int flags)
    {
        int fd = Libc.Open(path, flags | Libc.O_CLOEXEC, 0);
        return fd >= 0 ? fd : throw LastError("open", path);
    }

    internal static IOException LastError(string call, string what) => Libc.Error(call, what);

    /// <summary>An <see cref="ErrnoException"/> naming the call, what it was on and the errno, which is also its HResult.</summary>
    internal static IOException Error(string call, string what, int errno) => new ErrnoException(call, what, errno);

    /// <summary>Runs a read or write of a non-blocking fd again after Libc.EINTR; -1 for Libc.EAGAIN, an IOException for other errors.</summary>
    private static int NonBlocking(string call, string what, Func<nint> syscall)
    {
        while (true)
        {
            nint n = syscall();
            if (n >= 0)
            {
                return (int)n;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EAGAIN)
            {
                return -1;
            }

            if (errno != Libc.EINTR)
            {
                throw Error(call, what, errno);
            }
        }
    }

    private static void Check(int rc, string call, string what)
    {
        if (rc != 0)
        {
            throw new ErrnoException(call, what, rc);
        }
    }

    private static nint StringArray(string[] values)
    {
        nint block = Marshal.AllocHGlobal((values.Length + 1) * sizeof(nint));
        for (int i = 0; i < values.Length; i++)
        {
            Marshal.WriteIntPtr(block, i * sizeof(nint), Marshal.StringToCoTaskMemUTF8(values[i]));
        }

        Marshal.WriteIntPtr(block, values.Length * sizeof(nint), 0);
        return block;
    }

    private static void FreeStringArray(nint block, int count)
    {
        if (block == 0)
        {
            return;
        }

        for (int i = 0; i < count; i++)
        {
            Marshal.FreeCoTaskMem(Marshal.ReadIntPtr(block, i * sizeof(nint)));
        }

        Marshal.FreeHGlobal(block);
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int posix_spawn(int* pid, string path, nint fileActions, nint attributes, nint argv, nint envp);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_init(nint actions);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_destroy(nint actions);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_adddup2(nint actions, int fd, int newFd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);






    [LibraryImport("libc", SetLastError = true)]
    private static partial int syncfs(int fd);


    [LibraryImport("libc", SetLastError = true)]
    private static partial int tcgetattr(int fd, byte* termios);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int isatty(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);




    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epoll, int operation, int fd, byte* e);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_wait(int epoll, byte* events, int maxEvents, int timeout);

}
