using System.Net.Sockets;
using FirecrackerContainerd.Vsock.Unix;
using FirecrackerContainerd.Vsock.VhostUser;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Vsock;

/// <summary>A virtio-vsock device served to QEMU over vhost-user that looks, from the host, like
/// Firecracker's hybrid vsock: one VM, one vhost-user connection, one Unix socket for host clients.</summary>
public sealed class VhostUserVsockDevice
{
    private readonly VhostUserVsockOptions _options;
    private readonly ILogger _logger;

    /// <summary>A device for the VM described by <paramref name="options"/> (validated here); it serves nothing until run.</summary>
    public VhostUserVsockDevice(VhostUserVsockOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Listens on both sockets, serves QEMU's vhost-user connection until QEMU disconnects or
    /// <paramref name="cancellationToken"/> fires, then closes every connection and removes both socket
    /// files. Host clients are accepted once the guest driver has started the device.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using Socket vhostListener = Listen(_options.SocketPath, removeStaleSocket: true);
        Socket? frontEnd = null;
        try
        {
            using Socket udsListener = Listen(_options.UdsPath, removeStaleSocket: false);
            try
            {
                frontEnd = await vhostListener.AcceptAsync(cancellationToken).ConfigureAwait(false);
                await ServeAsync(frontEnd, udsListener, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                File.Delete(_options.UdsPath);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping is the normal way out.
        }
        finally
        {
            frontEnd?.Dispose();
            File.Delete(_options.SocketPath);
        }
    }

    private async Task ServeAsync(Socket frontEnd, Socket udsListener, CancellationToken cancellationToken)
    {
        object gate = new();
        VhostUserSession? session = null;
        using var acceptStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task? acceptLoop = null;
        var muxer = new HybridVsockMuxer(gate, _options.UdsPath, _options.GuestCid, () =>
        {
            lock (gate)
            {
                session?.Queues?.ProcessRx();
            }
        }, _logger);
        try
        {
            session = new VhostUserSession(new VhostUserChannel(frontEnd, _options.SocketPath), _options.GuestCid, gate, muxer,
                onActivated: () => acceptLoop ??= muxer.AcceptAsync(udsListener, acceptStop.Token),
                onDeactivated: muxer.ResetAll,
                _logger);
            await session.RunAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await acceptStop.CancelAsync().ConfigureAwait(false);
            session?.Dispose();
            await muxer.DisposeAsync().ConfigureAwait(false);
            if (acceptLoop is not null)
            {
                await acceptLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private static Socket Listen(string path, bool removeStaleSocket)
    {
        if (Interop.IsSocket(path) is { } isSocket)
        {
            if (!removeStaleSocket || !isSocket)
            {
                throw new IOException($"bind {path}: the path already exists");
            }
            File.Delete(path);
        }
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.Listen(128);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"bind {path}: {e.Message}", e);
        }
    }
}
