using System.Threading.Channels;
using FirecrackerContainerd.Ttrpc.Framing;
using Google.Protobuf;

namespace FirecrackerContainerd.Ttrpc.Client;

/// <summary>The client end of one ttrpc 1.2 stream: Data frames out, Data frames and the final Response in.</summary>
public sealed class TtrpcClientStreamCall : IAsyncDisposable
{
    private readonly Channel<Frame> _incoming = Channel.CreateUnbounded<Frame>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly FrameWriter _writer;
    private readonly Action _forget;
    private bool _sendClosed;

    internal TtrpcClientStreamCall(uint streamId, FrameWriter writer, Action forget)
    {
        StreamId = streamId;
        _writer = writer;
        _forget = forget;
    }

    /// <summary>The stream id this client chose.</summary>
    public uint StreamId { get; }

    /// <summary>Sends one message as a Data frame.</summary>
    /// <exception cref="InvalidOperationException">The sending side was already closed.</exception>
    public async ValueTask SendAsync(IMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        ObjectDisposedException.ThrowIf(_sendClosed, this);
        await WriteAsync(FrameFlagBits.None, message.ToByteArray(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Tells the server no more messages follow (a Data frame with remote-closed and no data).</summary>
    public async ValueTask CloseSendAsync(CancellationToken cancellationToken = default)
    {
        if (_sendClosed)
        {
            return;
        }

        _sendClosed = true;
        await WriteAsync(FrameFlagBits.RemoteClosed | FrameFlagBits.NoData, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The next message from the server, or null once the server ended the stream with an OK status.</summary>
    /// <exception cref="TtrpcException">The server ended the stream with an error, or the connection closed.</exception>
    public async ValueTask<ReadOnlyMemory<byte>?> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        while (await _incoming.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!_incoming.Reader.TryRead(out var frame))
            {
                continue;
            }

            if (frame.Header.Type == FrameType.Data)
            {
                if ((frame.Header.Flags & FrameFlagBits.NoData) != 0)
                {
                    continue;
                }

                return frame.Payload;
            }

            // The final Response: throws on an error status, else the stream is over.
            TtrpcClient.Decode("stream", StreamId.ToString(System.Globalization.CultureInfo.InvariantCulture), frame);
            return null;
        }

        return null;
    }

    /// <summary>Stops tracking the stream; frames that still arrive for it are dropped.</summary>
    public ValueTask DisposeAsync()
    {
        _forget();
        _incoming.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }

    internal void Deliver(Frame frame)
    {
        _incoming.Writer.TryWrite(frame);
        if (frame.Header.Type != FrameType.Data)
        {
            _forget();
            _incoming.Writer.TryComplete();
        }
    }

    internal void Fail(Exception failure) => _incoming.Writer.TryComplete(failure);

    private async ValueTask WriteAsync(FrameFlagBits flags, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        try
        {
            await _writer.WriteAsync(StreamId, FrameType.Data, flags, payload, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new TtrpcException(StatusCode.Unavailable, "ttrpc: closed", e);
        }
    }
}
