using System.Threading.Channels;
using FirecrackerContainerd.Ttrpc.Framing;
using Google.Protobuf;

namespace FirecrackerContainerd.Ttrpc.Server;

/// <summary>The server end of one ttrpc 1.2 streaming call: messages from the client in, Data frames to the client out.</summary>
public sealed class TtrpcStreamCall
{
    private readonly Channel<ReadOnlyMemory<byte>> _incoming = Channel.CreateUnbounded<ReadOnlyMemory<byte>>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly FrameWriter _writer;

    internal TtrpcStreamCall(uint streamId, FrameWriter writer)
    {
        StreamId = streamId;
        _writer = writer;
    }

    /// <summary>The stream id chosen by the client.</summary>
    public uint StreamId { get; }

    /// <summary>The next message from the client, or null once the client has closed its side.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReceiveAsync(CancellationToken cancellationToken)
    {
        while (await _incoming.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (_incoming.Reader.TryRead(out var message))
            {
                return message;
            }
        }

        return null;
    }

    /// <summary>Sends one message to the client as a Data frame.</summary>
    public ValueTask SendAsync(IMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        return _writer.WriteAsync(StreamId, FrameType.Data, FrameFlagBits.None, message.ToByteArray(), cancellationToken);
    }

    internal void Deliver(ReadOnlyMemory<byte> message) => _incoming.Writer.TryWrite(message);

    internal void CompleteIncoming() => _incoming.Writer.TryComplete();
}
