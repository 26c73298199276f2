using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Transport;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>The shim's listening socket under /run/containerd/s: probing, binding with stale-socket handling, removal.</summary>
public static class ShimSocket
{
    /// <summary>True when something accepts a connection on <paramref name="path"/> right now.</summary>
    public static async Task<bool> AnswersAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            using var socket = await UnixSocketTransport.ConnectAsync(path, timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// Binds <paramref name="path"/> with mode 0600, creating its directory. A socket file nobody answers on is
    /// stale (left by a shim that died) and is replaced; a live one is an error.
    /// </summary>
    /// <exception cref="IOException">Another shim serves on the path, or binding failed.</exception>
    public static async Task<Socket> BindAsync(string path, CancellationToken cancellationToken)
    {
        string directory = Path.GetDirectoryName(path)
            ?? throw new ArgumentException($"socket path {path} has no directory", nameof(path));
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return UnixSocketTransport.Listen(path);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse && attempt == 0)
            {
                if (await AnswersAsync(path, cancellationToken).ConfigureAwait(false))
                {
                    throw new IOException($"shim socket {path} is already served by a running shim", e);
                }

                Remove(path);
            }
            catch (SocketException e)
            {
                throw new IOException($"bind shim socket {path}: {e.Message}", e);
            }
        }
    }

    /// <summary>Removes the socket file if it exists.</summary>
    public static void Remove(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (DirectoryNotFoundException)
        {
            // Nothing to remove.
        }
    }
}
