namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>Reads frames one after another from a byte stream; not safe for concurrent readers.</summary>
/// <remarks>
/// Reads ahead into a buffer so several small frames cost one read call. An oversized body is read and thrown
/// away so the stream stays in step; the caller answers it with ResourceExhausted, as ttrpc 1.1 does.
/// </remarks>
internal sealed class FrameReader
{
    private const int BufferSize = 64 * 1024;
    private readonly Stream _stream;
    private readonly byte[] _buffer = new byte[BufferSize];
    private int _start;
    private int _end;

    /// <summary>Reads from <paramref name="stream"/>; the caller keeps ownership of it.</summary>
    public FrameReader(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
    }

    private int Buffered => _end - _start;

    /// <summary>Reads the next frame, or returns null when the peer closed the stream between frames.</summary>
    /// <exception cref="TtrpcProtocolException">The stream ended inside a frame.</exception>
    public async ValueTask<Frame?> ReadAsync(CancellationToken cancellationToken)
    {
        int got = await FillAsync(FrameHeader.Size, cancellationToken).ConfigureAwait(false);
        if (got == 0)
        {
            return null;
        }

        if (got < FrameHeader.Size)
        {
            throw new TtrpcProtocolException($"ttrpc: peer closed the connection after {got} of {FrameHeader.Size} header bytes");
        }

        var header = FrameHeader.Read(_buffer.AsSpan(_start, FrameHeader.Size));
        _start += FrameHeader.Size;
        if (header.IsOversized)
        {
            await DiscardAsync(header.Length, cancellationToken).ConfigureAwait(false);
            return new Frame(header, ReadOnlyMemory<byte>.Empty);
        }

        if (header.Length == 0)
        {
            return new Frame(header, ReadOnlyMemory<byte>.Empty);
        }

        int length = (int)header.Length;
        var body = new byte[length];
        if (length <= BufferSize)
        {
            if (await FillAsync(length, cancellationToken).ConfigureAwait(false) < length)
            {
                throw Truncated(header);
            }

            _buffer.AsSpan(_start, length).CopyTo(body);
            _start += length;
            return new Frame(header, body);
        }

        // A large body: take what is buffered, read the rest straight into place.
        int fromBuffer = Buffered;
        _buffer.AsSpan(_start, fromBuffer).CopyTo(body);
        _start = _end = 0;
        try
        {
            await _stream.ReadExactlyAsync(body.AsMemory(fromBuffer), cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw new TtrpcProtocolException(Truncated(header).Message, e);
        }

        return new Frame(header, body);
    }

    /// <summary>Makes at least <paramref name="need"/> bytes available (or fewer at end of stream); returns how many are.</summary>
    private async ValueTask<int> FillAsync(int need, CancellationToken cancellationToken)
    {
        if (Buffered >= need)
        {
            return Buffered;
        }

        if (BufferSize - _start < need)
        {
            _buffer.AsSpan(_start, Buffered).CopyTo(_buffer);
            _end = Buffered;
            _start = 0;
        }

        while (Buffered < need)
        {
            int n = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }

            _end += n;
        }

        return Buffered;
    }

    private async ValueTask DiscardAsync(uint length, CancellationToken cancellationToken)
    {
        long left = length;
        int fromBuffer = (int)Math.Min(left, Buffered);
        _start += fromBuffer;
        left -= fromBuffer;
        while (left > 0)
        {
            _start = _end = 0;
            int n = await _stream.ReadAsync(_buffer.AsMemory(0, (int)Math.Min(left, BufferSize)), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new TtrpcProtocolException(
                    $"ttrpc: peer closed the connection inside an oversized body ({length} bytes announced)");
            }

            left -= n;
        }
    }

    private static TtrpcProtocolException Truncated(FrameHeader header) => new(
        $"ttrpc: peer closed the connection inside the {header.Length}-byte body of stream {header.StreamId}");
}
