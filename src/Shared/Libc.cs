using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Native;

/// <summary>
/// The libc calls several components make, declared once for the whole repository (this file is compiled into
/// every project under src/, the native AOT agent included); calls that only one component makes stay beside it.
/// Linux x86_64 and arm64 ABI.
/// </summary>
internal static unsafe partial class Libc
{
    internal const int ENOENT = 2;
    internal const int EINTR = 4;
    internal const int EAGAIN = 11;
    internal const int O_RDONLY = 0;
    internal const int O_WRONLY = 1;
    internal const int O_RDWR = 2;
    internal const int O_NONBLOCK = 0x800;
    internal const int O_CLOEXEC = 0x80000;
    internal const int EFD_NONBLOCK = 0x800;
    internal const int EFD_CLOEXEC = 0x80000;
    internal const short POLLIN = 1;
    internal const int SOL_SOCKET = 1;
    internal const int SCM_RIGHTS = 1;
    internal const int MSG_CTRUNC = 0x8;
    internal const int MSG_DONTWAIT = 0x40;
    internal const int MSG_CMSG_CLOEXEC = 0x40000000;
    internal const int CLONE_NEWNS = 0x00020000;
    internal const int CLONE_NEWUTS = 0x04000000;
    internal const int CLONE_NEWIPC = 0x08000000;
    internal const int CLONE_NEWPID = 0x20000000;
    internal const int CLONE_NEWNET = 0x40000000;

    /// <summary>struct pollfd.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    /// <summary>struct iovec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary>struct msghdr (64-bit layout).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    internal const int AT_FDCWD = -100;
    internal const int AT_EMPTY_PATH = 0x1000;
    internal const int AT_SYMLINK_NOFOLLOW = 0x100;
    internal const int S_IFMT = 0xF000;
    internal const int S_IFSOCK = 0xC000;
    internal const int S_IFLNK = 0xA000;
    private const uint STATX_TYPE = 1;

    /// <summary>struct statx is 256 bytes; its u16 stx_mode is at byte 28 on every architecture.</summary>
    private const int StatxBytes = 256;
    private const int StatxModeOffset = 28;

    /// <summary>
    /// The S_IFMT bits of <paramref name="path"/> relative to <paramref name="directoryFd"/> (<see cref="AT_FDCWD"/>, or
    /// with an empty path and <see cref="AT_EMPTY_PATH"/> the descriptor itself, O_PATH included), from statx(2).
    /// </summary>
    /// <exception cref="ErrnoException">statx failed.</exception>
    internal static int FileType(int directoryFd, string path, int flags)
    {
        byte* buffer = stackalloc byte[StatxBytes];
        if (Statx(directoryFd, path, flags, STATX_TYPE, buffer) != 0)
        {
            throw Error("statx", path.Length > 0 ? path : $"descriptor {directoryFd}");
        }

        return *(ushort*)(buffer + StatxModeOffset) & S_IFMT;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directoryFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Open(string path, int flags, uint mode);

    /// <summary>open(2) without a creation mode.</summary>
    internal static int Open(string path, int flags) => Open(path, flags, 0);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    internal static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    internal static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    internal static partial int Poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    internal static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(int fd, nuint request, nint argument);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", EntryPoint = "unshare", SetLastError = true)]
    internal static partial int Unshare(int flags);

    [LibraryImport("libc", EntryPoint = "mount", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Mount(string? source, string target, string? fileSystemType, ulong flags, string? data);

    [LibraryImport("libc", EntryPoint = "umount2", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Umount2(string target, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    internal static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    internal static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    internal static partial int Bind(int fd, void* address, uint addressLength);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    internal static partial int SetNs(int fd, int namespaceType);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "getegid")]
    internal static partial uint GetEgid();

    /// <summary>The errno of the last libc call, as an exception naming the call and what it acted on.</summary>
    internal static ErrnoException Error(string call, string? subject = null) => new(call, subject, Marshal.GetLastPInvokeError());

    /// <summary>Throws <see cref="Error"/> when <paramref name="result"/> is -1; returns it otherwise.</summary>
    internal static int Check(int result, string call, string? subject = null) => result == -1 ? throw Error(call, subject) : result;

    /// <summary>Closes <paramref name="fd"/> when it is one, ignoring errors (for clean-up paths that must not throw).</summary>
    internal static void CloseQuietly(int fd)
    {
        if (fd >= 0)
        {
            _ = Close(fd);
        }
    }
}

/// <summary>A failed libc call: which call, on what (a path, a device, a fd), and the errno with its text.</summary>
internal sealed class ErrnoException : IOException
{
    public ErrnoException(string call, string? subject, int errno)
        : base($"{call}{(string.IsNullOrEmpty(subject) ? "" : " " + subject)}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno)
    {
        Call = call;
        Subject = subject;
        Errno = errno;
    }

    /// <summary>The libc function that failed.</summary>
    public string Call { get; }

    /// <summary>What it was applied to, if the caller said.</summary>
    public string? Subject { get; }

    /// <summary>The errno value.</summary>
    public int Errno { get; }
}
