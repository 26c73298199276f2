using System.Collections.Concurrent;
using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Framing;
using FirecrackerContainerd.Ttrpc.Protocol;
using FirecrackerContainerd.Ttrpc.Transport;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Ttrpc.Client;

/// <summary>
/// A ttrpc client on one connection: many calls in flight at once, matched to their answers by
/// stream id (odd, increasing). Unary calls, plus ttrpc 1.2 streams through <see cref="OpenStreamAsync"/>.
/// </summary>
public sealed partial class TtrpcClient : IAsyncDisposable
{
    private const string ClosedMessage = "ttrpc: closed";
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly FrameWriter _writer;
    private readonly ConcurrentDictionary<uint, TaskCompletionSource<Frame>> _pending = new();
    private readonly ConcurrentDictionary<uint, TtrpcClientStreamCall> _streams = new();
    private readonly CancellationTokenSource _closing = new();
    private readonly Task _receiveLoop;
    private readonly ILogger _logger;
    private readonly Lock _idLock = new();
    private uint _nextStreamId = 1;
    private volatile bool _closed;

    /// <summary>Starts a client on an already connected socket; the client owns the socket from now on.</summary>
    public TtrpcClient(Socket connectedSocket, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(connectedSocket);
        _socket = connectedSocket;
        _stream = new NetworkStream(connectedSocket, ownsSocket: true);
        // A failed write leaves calls that only queued their frame waiting: ending the connection fails them all.
        _writer = new FrameWriter(_stream, _ => ShutdownSocket());
        _logger = logger ?? NullLogger.Instance;
        _receiveLoop = Task.Run(ReceiveLoopAsync);
    }

    /// <summary>Completes when the connection is closed, by either side.</summary>
    public Task Completion => _receiveLoop;

    /// <summary>True once the connection is closing or closed, by either side; set before the calls in flight fail.</summary>
    public bool IsClosed => _closed;

    /// <summary>Connects to a ttrpc server listening on the Unix socket at <paramref name="path"/>.</summary>
    public static async Task<TtrpcClient> ConnectUnixAsync(string path, CancellationToken cancellationToken, ILogger? logger = null)
    {
        var socket = await UnixSocketTransport.ConnectAsync(path, cancellationToken).ConfigureAwait(false);
        return new TtrpcClient(socket, logger);
    }

    /// <summary>Calls <paramref name="service"/>/<paramref name="method"/> with protobuf messages.</summary>
    /// <exception cref="TtrpcException">The server answered with a non-OK status, the deadline passed or the connection closed.</exception>
    public async Task<TResponse> CallAsync<TResponse>(
        string service, string method, IMessage request, MessageParser<TResponse> responseParser,
        TtrpcCallOptions? options = null, CancellationToken cancellationToken = default)
        where TResponse : IMessage<TResponse>
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responseParser);
        var payload = await CallAsync(service, method, request.ToByteArray(), options, cancellationToken).ConfigureAwait(false);
        try
        {
            return responseParser.ParseFrom(payload.Span);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new TtrpcException(StatusCode.Internal, $"ttrpc: {service}/{method}: bad response payload: {e.Message}", e);
        }
    }

    /// <summary>Calls <paramref name="service"/>/<paramref name="method"/> with an encoded payload and returns the encoded answer.</summary>
    public async Task<ReadOnlyMemory<byte>> CallAsync(
        string service, string method, ReadOnlyMemory<byte> payload,
        TtrpcCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        ArgumentException.ThrowIfNullOrEmpty(method);
        options ??= TtrpcCallOptions.Default;
        if (options.Timeout is { } t && t <= TimeSpan.Zero)
        {
            throw new TtrpcException(StatusCode.DeadlineExceeded, "context deadline exceeded");
        }

        byte[] body = BuildRequest(service, method, payload, options);

        using var deadline = options.Timeout is { } limit ? new CancellationTokenSource(limit) : null;
        // Without a timeout the caller's token is used as is: no per-call linked source to allocate.
        using var linked = deadline is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var callToken = linked?.Token ?? cancellationToken;

        var answer = new TaskCompletionSource<Frame>(TaskCreationOptions.RunContinuationsAsynchronously);
        uint streamId = 0; // never a client stream id
        Frame frame;
        try
        {
            streamId = await SendRequestAsync(body, FrameFlagBits.None, id => _pending[id] = answer, callToken).ConfigureAwait(false);
            frame = await answer.Task.WaitAsync(callToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (deadline?.IsCancellationRequested == true && !cancellationToken.IsCancellationRequested)
        {
            throw new TtrpcException(StatusCode.DeadlineExceeded, "context deadline exceeded");
        }
        finally
        {
            _pending.TryRemove(streamId, out _);
        }

        return Decode(service, method, frame);
    }

    /// <summary>
    /// Opens a ttrpc 1.2 stream to <paramref name="service"/>/<paramref name="method"/>. With
    /// <paramref name="clientSends"/> the request says "remote open" and the caller sends messages with
    /// <see cref="TtrpcClientStreamCall.SendAsync"/> then <see cref="TtrpcClientStreamCall.CloseSendAsync"/>; without it
    /// <paramref name="request"/> is the only message and the request says "remote closed".
    /// </summary>
    public async Task<TtrpcClientStreamCall> OpenStreamAsync(
        string service, string method, IMessage? request, bool clientSends,
        TtrpcCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        ArgumentException.ThrowIfNullOrEmpty(method);
        byte[] body = BuildRequest(service, method, request?.ToByteArray() ?? ReadOnlyMemory<byte>.Empty, options ?? TtrpcCallOptions.Default);
        TtrpcClientStreamCall? stream = null;
        await SendRequestAsync(body, clientSends ? FrameFlagBits.RemoteOpen : FrameFlagBits.RemoteClosed, id =>
        {
            stream = new TtrpcClientStreamCall(id, _writer, () => _streams.TryRemove(id, out _));
            _streams[id] = stream;
        }, cancellationToken).ConfigureAwait(false);
        return stream!;
    }

    /// <summary>
    /// Allocates the next stream id and queues the request under one lock, so ids reach the wire in increasing
    /// order (a ttrpc 1.2 server refuses an id lower than one it has seen); writes the queue if it was idle.
    /// </summary>
    private async Task<uint> SendRequestAsync(byte[] body, FrameFlagBits flags, Action<uint> register, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        uint streamId;
        bool mustFlush;
        lock (_idLock)
        {
            if (_closed)
            {
                throw new TtrpcException(StatusCode.Unavailable, ClosedMessage);
            }

            streamId = _nextStreamId;
            try
            {
                mustFlush = _writer.Enqueue(streamId, FrameType.Request, flags, body);
            }
            catch (IOException e)
            {
                throw new TtrpcException(StatusCode.Unavailable, ClosedMessage, e);
            }

            _nextStreamId += 2;
            register(streamId);
        }

        try
        {
            if (mustFlush)
            {
                await _writer.FlushQueuedAsync().ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or NotSupportedException or InvalidOperationException)
        {
            _pending.TryRemove(streamId, out _);
            _streams.TryRemove(streamId, out _);
            throw new TtrpcException(StatusCode.Unavailable, ClosedMessage, e);
        }

        return streamId;
    }

    private static byte[] BuildRequest(string service, string method, ReadOnlyMemory<byte> payload, TtrpcCallOptions options)
    {
        var request = new Request
        {
            Service = service,
            Method = method,
            Payload = UnsafeByteOperations.UnsafeWrap(payload),
            TimeoutNano = options.Timeout is { } timeout ? timeout.Ticks * 100 : 0,
        };
        foreach (var (key, value) in options.Metadata.Pairs())
        {
            request.Metadata.Add(new KeyValue { Key = key, Value = value });
        }

        byte[] body = request.ToByteArray();
        if (body.Length > FrameHeader.MaxDataLength)
        {
            throw new TtrpcException(StatusCode.ResourceExhausted,
                $"message length {body.Length} exceed maximum message size of {FrameHeader.MaxDataLength}");
        }

        return body;
    }

    internal static ReadOnlyMemory<byte> Decode(string service, string method, Frame frame)
    {
        if (frame.Header.IsOversized)
        {
            throw new TtrpcException(StatusCode.ResourceExhausted,
                $"message length {frame.Header.Length} exceed maximum message size of {FrameHeader.MaxDataLength}");
        }

        if (frame.Header.Type != FrameType.Response)
        {
            throw new TtrpcException(StatusCode.Internal,
                $"ttrpc: {service}/{method}: unexpected frame type {(byte)frame.Header.Type} on stream {frame.Header.StreamId}");
        }

        Response response;
        try
        {
            response = Response.Parser.ParseFrom(frame.Payload.Span);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new TtrpcException(StatusCode.Internal, $"ttrpc: {service}/{method}: bad response envelope: {e.Message}", e);
        }

        // A missing status, or code 0, means OK (the Go server leaves the status out on success).
        if (response.Status is { Code: not 0 } status)
        {
            throw new TtrpcException((StatusCode)status.Code, status.Message);
        }

        return response.Payload.Memory;
    }

    private async Task ReceiveLoopAsync()
    {
        var reader = new FrameReader(_stream);
        Exception? failure = null;
        try
        {
            while (await reader.ReadAsync(_closing.Token).ConfigureAwait(false) is { } frame)
            {
                if (_pending.TryRemove(frame.Header.StreamId, out var call))
                {
                    call.TrySetResult(frame);
                }
                else if (_streams.TryGetValue(frame.Header.StreamId, out var stream))
                {
                    stream.Deliver(frame);
                }
                else
                {
                    LogUnknownStream(_logger, frame.Header.StreamId, frame.Header.Type);
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            failure = e;
        }
        finally
        {
            lock (_idLock)
            {
                _closed = true;
            }

            foreach (var stream in _streams.Values)
            {
                stream.Fail(failure is null
                    ? new TtrpcException(StatusCode.Unavailable, ClosedMessage)
                    : new TtrpcException(StatusCode.Unavailable, ClosedMessage, failure));
            }

            foreach (var id in _pending.Keys)
            {
                if (_pending.TryRemove(id, out var call))
                {
                    call.TrySetException(failure is null
                        ? new TtrpcException(StatusCode.Unavailable, ClosedMessage)
                        : new TtrpcException(StatusCode.Unavailable, ClosedMessage, failure));
                }
            }
        }
    }

    /// <summary>Closes the connection; calls still in flight fail with "ttrpc: closed".</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_idLock)
        {
            _closed = true;
        }

        await _closing.CancelAsync().ConfigureAwait(false);
        ShutdownSocket();

        await _stream.DisposeAsync().ConfigureAwait(false);
        await _receiveLoop.ConfigureAwait(false);
        _writer.Dispose();
        _closing.Dispose();
    }

    private void ShutdownSocket()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "ttrpc client: ignoring {Type} frame for unknown stream {StreamId}")]
    private static partial void LogUnknownStream(ILogger logger, uint streamId, FrameType type);
}
