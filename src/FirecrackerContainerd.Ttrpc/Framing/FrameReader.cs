using System.Buffers;

namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>Reads frames one after another from a byte stream; not safe for concurrent readers.</summary>
/// <remarks>
/// An oversized body is read and thrown away so the stream stays in step; the caller answers it with
/// ResourceExhausted, as ttrpc 1.1 does.
/// </remarks>
public sealed class FrameReader
{
    private const int DiscardChunk = 64 * 1024;
    private readonly Stream _stream;
    private readonly byte[] _header = new byte[FrameHeader.Size];

    /// <summary>Reads from <paramref name="stream"/>; the caller keeps ownership of it.</summary>
    public FrameReader(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
    }

    /// <summary>Reads the next frame, or returns null when the peer closed the stream between frames.</summary>
    /// <exception cref="TtrpcProtocolException">The stream ended inside a frame.</exception>
    public async ValueTask<Frame?> ReadAsync(CancellationToken cancellationToken)
    {
        int got = await _stream.ReadAtLeastAsync(_header, FrameHeader.Size, throwOnEndOfStream: false, cancellationToken)
            .ConfigureAwait(false);
        if (got == 0)
        {
            return null;
        }

        if (got < FrameHeader.Size)
        {
            throw new TtrpcProtocolException($"ttrpc: peer closed the connection after {got} of {FrameHeader.Size} header bytes");
        }

        var header = FrameHeader.Read(_header);
        if (header.IsOversized)
        {
            await DiscardAsync(header.Length, cancellationToken).ConfigureAwait(false);
            return new Frame(header, ReadOnlyMemory<byte>.Empty);
        }

        if (header.Length == 0)
        {
            return new Frame(header, ReadOnlyMemory<byte>.Empty);
        }

        var body = new byte[header.Length];
        try
        {
            await _stream.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw new TtrpcProtocolException(
                $"ttrpc: peer closed the connection inside the {header.Length}-byte body of stream {header.StreamId}", e);
        }

        return new Frame(header, body);
    }

    private async ValueTask DiscardAsync(uint length, CancellationToken cancellationToken)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent(DiscardChunk);
        try
        {
            long left = length;
            while (left > 0)
            {
                int want = (int)Math.Min(left, DiscardChunk);
                int n = await _stream.ReadAsync(scratch.AsMemory(0, want), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    throw new TtrpcProtocolException(
                        $"ttrpc: peer closed the connection inside an oversized body ({length} bytes announced)");
                }

                left -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }
}
