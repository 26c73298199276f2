using System.Net.Sockets;
using FirecrackerContainerd.Vsock.Connections;
using FirecrackerContainerd.Vsock.Packet;
using FirecrackerContainerd.Vsock.Virtio;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vsock.Unix;

/// <summary>Firecracker's hybrid vsock backend: host programs reach guest ports through one Unix socket
/// (<c>CONNECT port</c> / <c>OK hostport</c>), and a guest connection to host port P is forwarded to
/// the Unix socket <c>&lt;uds_path&gt;_P</c>. Owns every connection; all state changes happen under the
/// device lock.</summary>
internal sealed partial class HybridVsockMuxer : IVsockBackend, IAsyncDisposable
{
    /// <summary>Most concurrent connections (Firecracker's limit); further ones are refused.</summary>
    public const int MaxConnections = 1023;

    /// <summary>RSTs for unknown connections waiting for RX buffers; beyond this they are dropped.</summary>
    public const int MaxControlBacklog = 256;

    /// <summary>First host-side port handed to host-initiated connections (Firecracker: 2^30 .. 2^31).</summary>
    public const uint FirstLocalPort = 1u << 30;

    /// <summary>How long a host client has to send its CONNECT line.</summary>
    public static readonly TimeSpan ConnectRequestTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long the guest has to answer a REQUEST. Firecracker uses 2 s; an emulated guest
    /// under load needs more.</summary>
    public static readonly TimeSpan ResponseTimeout = TimeSpan.FromSeconds(10);

    private readonly object _gate;
    private readonly string _udsPath;
    private readonly ulong _guestCid;
    private readonly Action _rxWorkAvailable;
    private readonly ILogger _logger;
    private readonly Dictionary<ConnectionKey, HostStream> _streams = [];
    private readonly Queue<ConnectionKey> _ready = new();
    private readonly HashSet<ConnectionKey> _readySet = [];
    private readonly Queue<VsockHeader> _controlBacklog = new();
    private readonly CancellationTokenSource _lifetime = new();
    private readonly List<Task> _background = [];
    private uint _nextLocalPort = FirstLocalPort;

    public HybridVsockMuxer(object gate, string udsPath, ulong guestCid, Action rxWorkAvailable, ILogger logger)
    {
        _gate = gate;
        _udsPath = udsPath;
        _guestCid = guestCid;
        _rxWorkAvailable = rxWorkAvailable;
        _logger = logger;
    }

    /// <summary>Connections currently tracked (for tests and diagnostics).</summary>
    public int ConnectionCount
    {
        get
        {
            lock (_gate)
            {
                return _streams.Count;
            }
        }
    }

    /// <summary>Accepts host clients on the listening socket until cancelled.</summary>
    public async Task AcceptAsync(Socket listener, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _lifetime.Token);
        while (!linked.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            Track(ServeHostClientAsync(client));
        }
    }

    /// <summary>Resets every connection (the driver went away) and closes their host sockets.</summary>
    public void ResetAll()
    {
        lock (_gate)
        {
            foreach (HostStream stream in _streams.Values)
            {
                stream.Dispose();
            }
            _streams.Clear();
            _ready.Clear();
            _readySet.Clear();
            _controlBacklog.Clear();
        }
    }

    public bool HasRxWork
    {
        get
        {
            if (_controlBacklog.Count > 0)
            {
                return true;
            }
            foreach (ConnectionKey key in _ready)
            {
                if (_streams.TryGetValue(key, out HostStream? stream) && stream.Connection.HasRxWork)
                {
                    return true;
                }
            }
            return false;
        }
    }

    public VsockHeader? TakeRxPacket(Span<byte> payload, out int payloadLength)
    {
        payloadLength = 0;
        if (_controlBacklog.TryDequeue(out VsockHeader control))
        {
            return control;
        }
        while (_ready.TryDequeue(out ConnectionKey key))
        {
            _readySet.Remove(key);
            if (!_streams.TryGetValue(key, out HostStream? stream))
            {
                continue;
            }
            VsockHeader? header = stream.Connection.TakeRxPacket(payload, out payloadLength);
            if (header is not { } h)
            {
                continue;
            }
            if (h.Op == VsockOp.Rst)
            {
                Remove(stream);
            }
            else
            {
                if (payloadLength > 0)
                {
                    stream.SpaceAvailable.Set();
                }
                MarkReady(stream);
            }
            return h;
        }
        return null;
    }

    public void OnGuestPacket(GuestPacket packet)
    {
        VsockHeader header = packet.Header;
        var key = new ConnectionKey(header.DstPort, header.SrcPort);
        if (!_streams.TryGetValue(key, out HostStream? stream))
        {
            if (header.Op == VsockOp.Request)
            {
                OpenGuestInitiated(key, header);
            }
            else if (header.Op != VsockOp.Rst)
            {
                QueueReset(header);
            }
            return;
        }
        switch (stream.Connection.OnGuestPacket(packet))
        {
            case GuestPacketOutcome.Accepted:
                if (packet.Payload.Length > 0)
                {
                    stream.ToHost.Writer.TryWrite(packet.Payload);
                }
                break;
            case GuestPacketOutcome.Established:
                stream.Established.TrySetResult(true);
                break;
            case GuestPacketOutcome.PeerShutdown:
                if ((stream.Connection.PeerShutdown & VsockShutdownFlags.Send) != 0)
                {
                    stream.ToHost.Writer.TryComplete();
                }
                break;
            case GuestPacketOutcome.PeerReset:
                Remove(stream);
                return;
            case GuestPacketOutcome.Violation:
                LogReset(key.LocalPort, key.PeerPort, header.Op);
                stream.Dispose();
                break;
        }
        MarkReady(stream);
    }

    public void OnRejectedPacket(VsockHeader header)
    {
        var key = new ConnectionKey(header.DstPort, header.SrcPort);
        if (_streams.TryGetValue(key, out HostStream? stream))
        {
            // A malformed packet on a live connection ends that connection only.
            stream.Connection.Kill();
            stream.Dispose();
            MarkReady(stream);
        }
        else if (header.Op != VsockOp.Rst)
        {
            QueueReset(header);
        }
    }

    private void OpenGuestInitiated(ConnectionKey key, VsockHeader request)
    {
        if (_streams.Count >= MaxConnections)
        {
            QueueReset(request);
            return;
        }
        var stream = new HostStream(VsockConnection.GuestInitiated(key, _guestCid, request), null, _lifetime.Token);
        _streams.Add(key, stream);
        Track(DialHostAsync(stream));
    }

    private async Task DialHostAsync(HostStream stream)
    {
        string path = $"{_udsPath}_{stream.Connection.Key.LocalPort}";
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), stream.Lifetime.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            socket.Dispose();
            LogDialFailed(path, e.Message);
            lock (_gate)
            {
                stream.Connection.Kill();
                MarkReady(stream);
            }
            _rxWorkAvailable();
            return;
        }
        lock (_gate)
        {
            if (stream.Connection.State != ConnectionState.PeerInit || !_streams.ContainsKey(stream.Connection.Key))
            {
                socket.Dispose();
                return;
            }
            stream.Socket = socket;
            stream.Connection.AcceptPeer();
            MarkReady(stream);
        }
        _rxWorkAvailable();
        StartPumps(stream);
    }

    private async Task ServeHostClientAsync(Socket client)
    {
        uint? port;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token))
        {
            timeout.CancelAfter(ConnectRequestTimeout);
            try
            {
                port = await ConnectRequest.ReadAsync(client, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                port = null;
            }
        }
        if (port is not { } guestPort)
        {
            client.Dispose();
            return;
        }
        HostStream stream;
        lock (_gate)
        {
            if (_streams.Count >= MaxConnections)
            {
                client.Dispose();
                return;
            }
            var key = new ConnectionKey(AllocateLocalPort(guestPort), guestPort);
            stream = new HostStream(VsockConnection.HostInitiated(key, _guestCid), client, _lifetime.Token);
            _streams.Add(key, stream);
            MarkReady(stream);
        }
        _rxWorkAvailable();
        bool accepted;
        try
        {
            accepted = await stream.Established.Task.WaitAsync(ResponseTimeout, stream.Lifetime.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            accepted = false;
        }
        if (!accepted)
        {
            lock (_gate)
            {
                if (_streams.ContainsKey(stream.Connection.Key) && stream.Connection.State != ConnectionState.Killed)
                {
                    stream.Connection.Kill();
                    MarkReady(stream);
                }
                stream.Dispose();
            }
            _rxWorkAvailable();
            return;
        }
        try
        {
            byte[] ok = ConnectAcknowledgement.Format(stream.Connection.Key.LocalPort);
            await client.SendAsync(ok, SocketFlags.None, stream.Lifetime.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Fail(stream);
            return;
        }
        StartPumps(stream);
    }

    private void StartPumps(HostStream stream)
    {
        Track(PumpHostToGuestAsync(stream));
        Track(PumpGuestToHostAsync(stream));
    }

    private async Task PumpHostToGuestAsync(HostStream stream)
    {
        byte[] buffer = new byte[VsockConnection.HostBufferCapacity];
        Socket socket = stream.Socket!;
        CancellationToken token = stream.Lifetime.Token;
        try
        {
            while (true)
            {
                int free;
                lock (_gate)
                {
                    if (stream.Connection.State == ConnectionState.Killed)
                    {
                        return;
                    }
                    free = stream.Connection.HostBufferFree;
                }
                if (free == 0)
                {
                    await stream.SpaceAvailable.WaitAsync(token).ConfigureAwait(false);
                    continue;
                }
                int read = await socket.ReceiveAsync(buffer.AsMemory(0, free), SocketFlags.None, token).ConfigureAwait(false);
                lock (_gate)
                {
                    if (read == 0)
                    {
                        stream.Connection.OnHostEof();
                    }
                    else
                    {
                        stream.Connection.AppendHostData(buffer.AsSpan(0, read));
                    }
                    MarkReady(stream);
                }
                _rxWorkAvailable();
                if (read == 0)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Fail(stream);
        }
    }

    private async Task PumpGuestToHostAsync(HostStream stream)
    {
        Socket socket = stream.Socket!;
        CancellationToken token = stream.Lifetime.Token;
        try
        {
            await foreach (byte[] chunk in stream.ToHost.Reader.ReadAllAsync(token).ConfigureAwait(false))
            {
                int sent = 0;
                while (sent < chunk.Length)
                {
                    sent += await socket.SendAsync(chunk.AsMemory(sent), SocketFlags.None, token).ConfigureAwait(false);
                }
                lock (_gate)
                {
                    stream.Connection.OnHostWritten(chunk.Length);
                    MarkReady(stream);
                }
                _rxWorkAvailable();
            }
            if (token.IsCancellationRequested)
            {
                return;
            }
            // The guest will send no more: pass the end of stream on to the host.
            socket.Shutdown(SocketShutdown.Send);
            lock (_gate)
            {
                if (stream.Connection.PeerShutdown == VsockShutdownFlags.Both && stream.Connection.State != ConnectionState.Killed)
                {
                    stream.Connection.Kill();
                    MarkReady(stream);
                }
            }
            _rxWorkAvailable();
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Fail(stream);
        }
    }

    /// <summary>A host-side failure resets the connection (unless the device is shutting down).</summary>
    private void Fail(HostStream stream)
    {
        lock (_gate)
        {
            if (_streams.TryGetValue(stream.Connection.Key, out HostStream? current) && current == stream
                && stream.Connection.State != ConnectionState.Killed)
            {
                stream.Connection.Kill();
                MarkReady(stream);
            }
            stream.Dispose();
        }
        _rxWorkAvailable();
    }

    private uint AllocateLocalPort(uint guestPort)
    {
        while (true)
        {
            uint port = _nextLocalPort;
            _nextLocalPort = _nextLocalPort == uint.MaxValue >> 1 ? FirstLocalPort : _nextLocalPort + 1;
            if (!_streams.ContainsKey(new ConnectionKey(port, guestPort)))
            {
                return port;
            }
        }
    }

    private void QueueReset(VsockHeader to)
    {
        if (_controlBacklog.Count >= MaxControlBacklog)
        {
            return;
        }
        _controlBacklog.Enqueue(new VsockHeader(VsockLimits.HostCid, _guestCid, to.DstPort, to.SrcPort, 0,
            VsockHeader.TypeStream, VsockOp.Rst, 0, 0, 0));
    }

    private void MarkReady(HostStream stream)
    {
        if (_readySet.Add(stream.Connection.Key))
        {
            _ready.Enqueue(stream.Connection.Key);
        }
    }

    private void Remove(HostStream stream)
    {
        if (_streams.TryGetValue(stream.Connection.Key, out HostStream? current) && current == stream)
        {
            _streams.Remove(stream.Connection.Key);
        }
        stream.Dispose();
    }

    private void Track(Task task)
    {
        lock (_background)
        {
            _background.RemoveAll(t => t.IsCompleted);
            _background.Add(task);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _lifetime.CancelAsync().ConfigureAwait(false);
        ResetAll();
        Task[] pending;
        lock (_background)
        {
            pending = [.. _background];
        }
        await Task.WhenAll(pending).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _lifetime.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "vsock connection {LocalPort}:{PeerPort} reset after guest {Op}")]
    private partial void LogReset(uint localPort, uint peerPort, VsockOp op);

    [LoggerMessage(Level = LogLevel.Debug, Message = "guest connection to {Path} refused: {Reason}")]
    private partial void LogDialFailed(string path, string reason);
}
