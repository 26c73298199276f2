using System.Collections.Concurrent;
using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Framing;
using FirecrackerContainerd.Ttrpc.Protocol;
using FirecrackerContainerd.Ttrpc.Transport;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Ttrpc.Server;

/// <summary>
/// One accepted connection: reads frames in order, runs each request in its own task, and writes answers
/// one frame at a time. Everything the peer sends is checked before it is acted on.
/// </summary>
internal sealed partial class ServerConnection : IDisposable
{
    private readonly Socket? _socket;
    private readonly Stream _stream;
    private readonly FrameWriter _writer;
    private readonly TtrpcServiceRegistry _services;
    private readonly TtrpcServerOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopReading = new();
    private readonly CancellationTokenSource _closed;
    private readonly ConcurrentDictionary<uint, Task> _inFlight = new();
    private readonly ConcurrentDictionary<uint, TtrpcStreamCall> _openStreams = new();
    private readonly PeerCredentials _self;
    private PeerCredentials? _peer;
    private uint _lastStreamId;
    private int _closedFlag;

    public ServerConnection(Socket socket, TtrpcServiceRegistry services, TtrpcServerOptions options, PeerCredentials self, ILogger logger, CancellationToken hardStop)
        : this(new NetworkStream(socket, ownsSocket: true), socket, services, options, self, logger, hardStop)
    {
    }

    /// <summary>A connection on any full-duplex stream (an AF_VSOCK socket .NET cannot wrap as a Socket, say); <paramref name="socket"/>, when known, gives peer credentials.</summary>
    public ServerConnection(Stream stream, Socket? socket, TtrpcServiceRegistry services, TtrpcServerOptions options, PeerCredentials self, ILogger logger, CancellationToken hardStop)
    {
        _socket = socket;
        _stream = stream;
        _self = self;
        // Answers are only queued by most handlers; if the connection cannot be written, end it.
        _writer = new FrameWriter(_stream, _ => Close());
        _services = services;
        _options = options;
        _logger = logger;
        _closed = CancellationTokenSource.CreateLinkedTokenSource(hardStop);
    }

    public async Task RunAsync()
    {
        if (_socket is { AddressFamily: AddressFamily.Unix })
        {
            _peer = PeerCredentials.Of(_socket);
            if (_options.RequireSameUser && !_peer.Value.IsSameUserAs(_self))
            {
                LogRefusedPeer(_logger, _peer.Value.ProcessId, _peer.Value.UserId, _peer.Value.GroupId);
                return;
            }
        }

        var reader = new FrameReader(_stream);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(_stopReading.Token, _closed.Token);
        try
        {
            while (await reader.ReadAsync(reading.Token).ConfigureAwait(false) is { } frame)
            {
                await DispatchAsync(frame).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (reading.IsCancellationRequested)
        {
            // Shutdown asked us to stop reading; calls in flight still finish.
            return;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            LogReadFailed(_logger, e.Message);
        }

        // The peer is gone (or broke the framing): nobody can receive answers any more.
        await _closed.CancelAsync().ConfigureAwait(false);
    }

    public void StopReading()
    {
        try
        {
            _stopReading.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The connection ended on its own while the server was stopping.
        }
    }

    public Task InFlightAsync() => Task.WhenAll(_inFlight.Values);

    public void Close()
    {
        if (Interlocked.Exchange(ref _closedFlag, 1) != 0)
        {
            return;
        }

        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already torn down.
        }

        foreach (var stream in _openStreams.Values)
        {
            stream.CompleteIncoming();
        }

        try
        {
            _socket?.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The peer closed first.
        }

        _stream.Dispose();
    }

    public void Dispose()
    {
        Close();
        _writer.Dispose();
        _stopReading.Dispose();
        _closed.Dispose();
    }

    private async ValueTask DispatchAsync(Frame frame)
    {
        var header = frame.Header;
        if (header.IsOversized)
        {
            await SendStatusAsync(header.StreamId, StatusCode.ResourceExhausted,
                $"message length {header.Length} exceed maximum message size of {FrameHeader.MaxDataLength}").ConfigureAwait(false);
            return;
        }

        if (header.StreamId % 2 != 1)
        {
            await SendStatusAsync(header.StreamId, StatusCode.InvalidArgument,
                "StreamID must be odd for client initiated streams").ConfigureAwait(false);
            return;
        }

        switch (header.Type)
        {
            case FrameType.Request:
                await StartRequestAsync(frame).ConfigureAwait(false);
                break;
            case FrameType.Data:
                DeliverData(frame);
                break;
            default:
                // Ignore other types, as ttrpc 1.1 does, for forward compatibility.
                break;
        }
    }

    private async ValueTask StartRequestAsync(Frame frame)
    {
        uint streamId = frame.Header.StreamId;
        if (streamId <= _lastStreamId)
        {
            await SendStatusAsync(streamId, StatusCode.InvalidArgument,
                "StreamID cannot be re-used and must increment").ConfigureAwait(false);
            return;
        }

        _lastStreamId = streamId;
        Request request;
        try
        {
            request = Request.Parser.ParseFrom(frame.Payload.Span);
        }
        catch (InvalidProtocolBufferException e)
        {
            await SendStatusAsync(streamId, StatusCode.InvalidArgument, $"unmarshal request error: {e.Message}").ConfigureAwait(false);
            return;
        }

        TtrpcMethod method;
        try
        {
            method = _services.Lookup(request.Service, request.Method);
        }
        catch (TtrpcException e)
        {
            await SendStatusAsync(streamId, e.StatusCode, e.Message).ConfigureAwait(false);
            return;
        }

        TtrpcStreamCall? stream = null;
        if (method.Stream is not null)
        {
            stream = new TtrpcStreamCall(streamId, _writer);
            if (!request.Payload.IsEmpty)
            {
                stream.Deliver(request.Payload.Memory);
            }

            if ((frame.Header.Flags & FrameFlagBits.RemoteOpen) != 0)
            {
                _openStreams[streamId] = stream;
            }
            else
            {
                stream.CompleteIncoming();
            }
        }

        var task = RunHandlerAsync(request, method, stream, streamId);
        _inFlight[streamId] = task;
        if (task.IsCompleted)
        {
            _inFlight.TryRemove(streamId, out _);
        }
    }

    private void DeliverData(Frame frame)
    {
        var header = frame.Header;
        if (!_openStreams.TryGetValue(header.StreamId, out var stream))
        {
            LogDataForUnknownStream(_logger, header.StreamId);
            return;
        }

        if ((header.Flags & FrameFlagBits.NoData) == 0)
        {
            stream.Deliver(frame.Payload);
        }

        if ((header.Flags & FrameFlagBits.RemoteClosed) != 0)
        {
            _openStreams.TryRemove(header.StreamId, out _);
            stream.CompleteIncoming();
        }
    }

    private async Task RunHandlerAsync(Request request, TtrpcMethod method, TtrpcStreamCall? stream, uint streamId)
    {
        await Task.Yield();
        // Most calls carry no deadline and no metadata: then nothing extra is allocated for them.
        using var deadline = request.TimeoutNano > 0
            ? new CancellationTokenSource(TimeSpan.FromTicks(Math.Max(1, request.TimeoutNano / 100)))
            : null;
        using var callToken = deadline is null ? null : CancellationTokenSource.CreateLinkedTokenSource(_closed.Token, deadline.Token);
        var metadata = request.Metadata.Count == 0 ? TtrpcMetadata.Empty : new TtrpcMetadata();
        foreach (var pair in request.Metadata)
        {
            metadata.Add(pair.Key, pair.Value);
        }

        var context = new TtrpcCallContext(request.Service, request.Method, streamId, metadata, _peer, callToken?.Token ?? _closed.Token);
        var response = new Response();
        try
        {
            if (method.Unary is { } unary)
            {
                var answer = await unary(request.Payload.Memory, context).ConfigureAwait(false);
                response.Payload = answer.ToByteString();
            }
            else
            {
                await method.Stream!(stream!, context).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // Every handler failure becomes a status for the peer.
        catch (Exception e)
#pragma warning restore CA1031
        {
            var (code, message) = StatusMapping.FromException(e, deadline?.IsCancellationRequested == true);
            response = new Response { Status = new Status { Code = (int)code, Message = message } };
            if (code is StatusCode.Unknown or StatusCode.Internal)
            {
                LogHandlerFailed(_logger, request.Service, request.Method, e);
            }
        }
        finally
        {
            _openStreams.TryRemove(streamId, out _);
        }

        byte[] body = response.ToByteArray();
        if (body.Length > FrameHeader.MaxDataLength)
        {
            body = StatusResponse(StatusCode.ResourceExhausted,
                $"message length {body.Length} exceed maximum message size of {FrameHeader.MaxDataLength}");
        }

        await WriteAsync(streamId, body).ConfigureAwait(false);
        _inFlight.TryRemove(streamId, out _);
    }

    private ValueTask SendStatusAsync(uint streamId, StatusCode code, string message) =>
        WriteAsync(streamId, StatusResponse(code, message));

    private static byte[] StatusResponse(StatusCode code, string message) =>
        new Response { Status = new Status { Code = (int)code, Message = message } }.ToByteArray();

    private async ValueTask WriteAsync(uint streamId, byte[] body)
    {
        try
        {
            await _writer.WriteAsync(streamId, FrameType.Response, FrameFlagBits.None, body, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            LogWriteFailed(_logger, streamId, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "ttrpc server: refused peer pid {Pid} uid {Uid} gid {Gid}: not the same user")]
    private static partial void LogRefusedPeer(ILogger logger, int pid, uint uid, uint gid);

    [LoggerMessage(Level = LogLevel.Debug, Message = "ttrpc server: connection read ended: {Reason}")]
    private static partial void LogReadFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "ttrpc server: answer on stream {StreamId} not delivered: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, uint streamId, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "ttrpc server: ignoring data for unknown stream {StreamId}")]
    private static partial void LogDataForUnknownStream(ILogger logger, uint streamId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "ttrpc server: {Service}/{Method} failed")]
    private static partial void LogHandlerFailed(ILogger logger, string service, string method, Exception exception);
}
