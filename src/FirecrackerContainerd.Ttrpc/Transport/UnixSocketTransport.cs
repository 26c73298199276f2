using System.Net.Sockets;

namespace FirecrackerContainerd.Ttrpc.Transport;

/// <summary>Creates connected and listening Unix stream sockets, the transport ttrpc uses on the host.</summary>
/// <remarks>The client and server take any connected <see cref="Socket"/>, so AF_VSOCK sockets plug in the same way.</remarks>
public static class UnixSocketTransport
{
    /// <summary>Connects to the Unix socket at <paramref name="path"/>.</summary>
    public static async Task<Socket> ConnectAsync(string path, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"connect to unix socket {path}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Binds and listens on <paramref name="path"/>, then sets the file mode (0600 by default).</summary>
    /// <exception cref="SocketException">Binding failed, e.g. with <see cref="SocketError.AddressAlreadyInUse"/>.</exception>
    public static Socket Listen(string path, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite, int backlog = 128)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, mode);
            socket.Listen(backlog);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
