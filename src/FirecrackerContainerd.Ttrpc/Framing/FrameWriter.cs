using System.Buffers;

namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>Writes whole frames to a byte stream, one at a time, so concurrent senders never interleave bytes.</summary>
public sealed class FrameWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>Writes to <paramref name="stream"/>; the caller keeps ownership of it.</summary>
    public FrameWriter(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
    }

    /// <summary>Writes one frame (header and body in a single write).</summary>
    /// <exception cref="ArgumentException">The body is larger than <see cref="FrameHeader.MaxDataLength"/>.</exception>
    public async ValueTask WriteAsync(uint streamId, FrameType type, FrameFlagBits flags, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (payload.Length > FrameHeader.MaxDataLength)
        {
            throw new ArgumentException(
                $"message length {payload.Length} exceed maximum message size of {FrameHeader.MaxDataLength}", nameof(payload));
        }

        int total = FrameHeader.Size + payload.Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            new FrameHeader((uint)payload.Length, streamId, type, flags).Write(buffer);
            payload.Span.CopyTo(buffer.AsSpan(FrameHeader.Size));
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await _stream.WriteAsync(buffer.AsMemory(0, total), CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _lock.Dispose();
}
