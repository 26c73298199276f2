using System.Net.Sockets;
using System.Threading.Channels;
using FirecrackerContainerd.Vsock.Connections;

namespace FirecrackerContainerd.Vsock.Unix;

/// <summary>A vsock connection together with its host Unix socket and the two pumps' plumbing.</summary>
internal sealed class HostStream : IDisposable
{
    public HostStream(VsockConnection connection, Socket? socket, CancellationToken deviceLifetime)
    {
        Connection = connection;
        Socket = socket;
        Lifetime = CancellationTokenSource.CreateLinkedTokenSource(deviceLifetime);
    }

    public VsockConnection Connection { get; }

    /// <summary>The host end; null while a guest-initiated connection is still being dialled.</summary>
    public Socket? Socket { get; set; }

    /// <summary>Guest→host payloads waiting to be written to the socket. Unbounded here because the
    /// connection's credit accounting already caps what the guest may have in flight.</summary>
    public Channel<byte[]> ToHost { get; } = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>Set when the guest consumed staged host bytes, so the reader may read more.</summary>
    public AsyncSignal SpaceAvailable { get; } = new();

    /// <summary>Completes with true when the guest accepts a host-initiated connection, false when refused or dropped.</summary>
    public TaskCompletionSource<bool> Established { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public CancellationTokenSource Lifetime { get; }

    public void Dispose()
    {
        Established.TrySetResult(false);
        ToHost.Writer.TryComplete();
        try
        {
            Lifetime.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already torn down.
        }
        Socket?.Dispose();
        SpaceAvailable.Set();
    }
}
