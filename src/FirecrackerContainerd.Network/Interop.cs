using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Network;

/// <summary>
/// The libc calls only this library makes (netlink socket options, datagram send and receive, unshare), beside
/// <see cref="Libc"/>'s common ones (socket, bind, open, close, ioctl, setns), with errno kept for the caller to name
/// in its exception.
/// </summary>
internal static partial class Interop
{
    internal const int AF_NETLINK = 16;
    internal const int SOCK_RAW = 3;
    internal const int SOCK_CLOEXEC = 0x80000;
    internal const int NETLINK_ROUTE = 0;
    internal const int SO_RCVTIMEO = 20;
    internal const int SOL_NETLINK = 270;
    internal const int NETLINK_CAP_ACK = 10;
    internal const int NETLINK_EXT_ACK = 11;
    internal const int MSG_TRUNC = 0x20;

    internal const ulong MS_BIND = 0x1000;
    internal const int MNT_DETACH = 0x2;

    internal const int EPERM = 1;
    internal const int EBUSY = 16;
    internal const int EEXIST = 17;
    internal const int ENODEV = 19;
    internal const int EINVAL = 22;

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    internal static unsafe partial int GetSockName(int fd, void* address, uint* addressLength);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    internal static unsafe partial int SetSockOpt(int fd, int level, int name, void* value, uint valueLength);

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    internal static unsafe partial nint SendTo(int fd, byte* buffer, nuint length, int flags, void* address, uint addressLength);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    internal static unsafe partial nint Recv(int fd, byte* buffer, nuint length, int flags);

    /// <summary>The errno of the last P/Invoke call.</summary>
    internal static int LastErrno => Marshal.GetLastPInvokeError();

    /// <summary>strerror text with the symbolic name where it is one of the few a caller branches on.</summary>
    internal static string ErrnoText(int errno)
    {
        string text = Marshal.GetPInvokeErrorMessage(errno);
        string? name = errno switch
        {
            EPERM => "EPERM",
            Libc.ENOENT => "ENOENT",
            EEXIST => "EEXIST",
            ENODEV => "ENODEV",
            EINVAL => "EINVAL",
            Libc.EAGAIN => "EAGAIN",
            _ => null,
        };
        return name is null ? text : $"{text} ({name})";
    }
}
