using System.Runtime.InteropServices;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Agent;

/// <summary>
/// A listening AF_VSOCK stream socket. .NET has no vsock address family (a <see cref="Socket"/> made from
/// such a descriptor believes it is not connected), so the socket is made, bound and accepted through
/// libc, and each accepted connection is handed out as a stream over its descriptor.
/// </summary>
internal sealed partial class VsockListener : IDisposable
{
    /// <summary>AF_VSOCK.</summary>
    public const int AddressFamilyVsock = 40;

    /// <summary>VMADDR_CID_ANY: listen on every context id of this machine.</summary>
    public const uint CidAny = 0xFFFFFFFF;

    private const int SockStream = 1;
    private const int SockCloexec = 0x80000;
    private const int EINTR = 4;

    private readonly int _fd;
    private int _closed;

    private VsockListener(int fd, uint port)
    {
        _fd = fd;
        Port = port;
    }

    /// <summary>The port listened on.</summary>
    public uint Port { get; }

    /// <summary>Listens on <paramref name="port"/> for connections from any context id.</summary>
    public static VsockListener Listen(uint port, int backlog = 128)
    {
        int fd = Libc.Socket(AddressFamilyVsock, SockStream | SockCloexec, 0);
        if (fd < 0)
        {
            throw Error("socket(AF_VSOCK)", port);
        }

        Span<byte> address = stackalloc byte[16];
        address.Clear();
        BitConverter.TryWriteBytes(address, (ushort)AddressFamilyVsock);
        BitConverter.TryWriteBytes(address[4..], port);
        BitConverter.TryWriteBytes(address[8..], CidAny);
        if (Bind(fd, address) != 0 || ListenNative(fd, backlog) != 0)
        {
            var e = Error("bind/listen", port);
            _ = Libc.Close(fd);
            throw e;
        }

        return new VsockListener(fd, port);
    }

    /// <summary>Waits (on the calling thread) for the next connection; null once the listener is closed.</summary>
    public Stream? Accept()
    {
        while (Volatile.Read(ref _closed) == 0)
        {
            int fd = Accept4(_fd, 0, 0, SockCloexec);
            if (fd >= 0)
            {
                return new SocketStream(new System.Net.Sockets.Socket(new System.Net.Sockets.SafeSocketHandle(fd, ownsHandle: true)));
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR && Volatile.Read(ref _closed) == 0)
            {
                // ECONNABORTED and friends end one connection, not the listener.
                Thread.Sleep(10);
            }
        }

        return null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            _ = Shutdown(_fd, 2); // wakes a thread blocked in accept
            _ = Libc.Close(_fd);
        }
    }

    private static ErrnoException Error(string call, uint port) => Libc.Error(call, $"vsock port {port}");

    private static unsafe int Bind(int fd, ReadOnlySpan<byte> address)
    {
        fixed (byte* bytes = address)
        {
            return Libc.Bind(fd, bytes, (uint)address.Length);
        }
    }



    [LibraryImport("libc", EntryPoint = "listen", SetLastError = true)]
    private static partial int ListenNative(int fd, int backlog);

    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    private static partial int Accept4(int fd, nint address, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    private static partial int Shutdown(int fd, int how);
}
