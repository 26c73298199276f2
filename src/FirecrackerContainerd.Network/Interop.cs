using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Network;

/// <summary>
/// The libc calls this library needs (netlink sockets, the tun device, setns), with errno kept for the caller to
/// name in its exception.
/// </summary>
internal static partial class Interop
{
    internal const int AF_NETLINK = 16;
    internal const int SOCK_RAW = 3;
    internal const int SOCK_CLOEXEC = 0x80000;
    internal const int NETLINK_ROUTE = 0;
    internal const int SOL_SOCKET = 1;
    internal const int SO_RCVTIMEO = 20;
    internal const int SOL_NETLINK = 270;
    internal const int NETLINK_CAP_ACK = 10;
    internal const int NETLINK_EXT_ACK = 11;
    internal const int MSG_TRUNC = 0x20;

    internal const int O_RDONLY = 0x0;
    internal const int O_RDWR = 0x2;
    internal const int O_CLOEXEC = 0x80000;

    internal const int CLONE_NEWNET = 0x40000000;

    internal const int EPERM = 1;
    internal const int ENOENT = 2;
    internal const int EINTR = 4;
    internal const int EAGAIN = 11;
    internal const int EBUSY = 16;
    internal const int EEXIST = 17;
    internal const int ENODEV = 19;
    internal const int EINVAL = 22;

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    internal static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    internal static unsafe partial int Bind(int fd, void* address, uint addressLength);

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    internal static unsafe partial int GetSockName(int fd, void* address, uint* addressLength);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    internal static unsafe partial int SetSockOpt(int fd, int level, int name, void* value, uint valueLength);

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    internal static unsafe partial nint SendTo(int fd, byte* buffer, nuint length, int flags, void* address, uint addressLength);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    internal static unsafe partial nint Recv(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static unsafe partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(int fd, nuint request, nint argument);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    internal static partial int SetNs(int fd, int namespaceType);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "getegid")]
    internal static partial uint GetEgid();

    /// <summary>The errno of the last P/Invoke call.</summary>
    internal static int LastErrno => Marshal.GetLastPInvokeError();

    /// <summary>strerror text with the symbolic name where it is one of the few a caller branches on.</summary>
    internal static string ErrnoText(int errno)
    {
        string text = Marshal.GetPInvokeErrorMessage(errno);
        string? name = errno switch
        {
            EPERM => "EPERM",
            ENOENT => "ENOENT",
            EEXIST => "EEXIST",
            ENODEV => "ENODEV",
            EINVAL => "EINVAL",
            EAGAIN => "EAGAIN",
            _ => null,
        };
        return name is null ? text : $"{text} ({name})";
    }
}
