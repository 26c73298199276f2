using System.Buffers;

namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>
/// Writes whole frames to a byte stream so concurrent senders never interleave bytes. Frames queued while a
/// write is under way go out together in the next write (group commit), so many concurrent senders cost few
/// system calls. The sender that finds the queue idle writes until it is empty; the others return as soon as
/// their frame is queued. A failed write is reported to the owner (which closes the connection), because
/// senders that only queued are not waiting for it.
/// </summary>
internal sealed class FrameWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly Action<Exception>? _onFailure;
    private readonly Lock _lock = new();
    private ArrayBufferWriter<byte> _pending = new(64 * 1024);
    private ArrayBufferWriter<byte> _spare = new(64 * 1024);
    private bool _flushing;
    private Exception? _failure;

    /// <summary>Writes to <paramref name="stream"/>; the caller keeps ownership of it.</summary>
    /// <param name="stream">The connection.</param>
    /// <param name="onFailure">Called once when a write fails, so the owner can tear the connection down.</param>
    public FrameWriter(Stream stream, Action<Exception>? onFailure = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _onFailure = onFailure;
    }

    /// <summary>
    /// Queues one frame (header and body together) and, if no write is under way, writes the queue until it is
    /// empty. Frames reach the wire in the order they were queued.
    /// </summary>
    /// <exception cref="ArgumentException">The body is larger than <see cref="FrameHeader.MaxDataLength"/>.</exception>
    /// <exception cref="IOException">This or an earlier write on the stream failed.</exception>
    /// <remarks>Once a frame is queued it is written even if <paramref name="cancellationToken"/> fires; a half-written frame would break the stream.</remarks>
    public ValueTask WriteAsync(uint streamId, FrameType type, FrameFlagBits flags, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Enqueue(streamId, type, flags, payload) ? FlushQueuedAsync() : ValueTask.CompletedTask;
    }

    /// <summary>
    /// Queues one frame without writing. Returns true when the queue was idle: the caller must then call
    /// <see cref="FlushQueuedAsync"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The body is larger than <see cref="FrameHeader.MaxDataLength"/>.</exception>
    /// <exception cref="IOException">An earlier write on this stream failed.</exception>
    public bool Enqueue(uint streamId, FrameType type, FrameFlagBits flags, ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > FrameHeader.MaxDataLength)
        {
            throw new ArgumentException(
                $"message length {payload.Length} exceed maximum message size of {FrameHeader.MaxDataLength}", nameof(payload));
        }

        lock (_lock)
        {
            if (_failure is not null)
            {
                throw new IOException($"ttrpc: connection write failed earlier: {_failure.Message}", _failure);
            }

            new FrameHeader((uint)payload.Length, streamId, type, flags).Write(_pending.GetSpan(FrameHeader.Size));
            _pending.Advance(FrameHeader.Size);
            _pending.Write(payload.Span);
            bool mustFlush = !_flushing;
            _flushing = true;
            return mustFlush;
        }
    }

    /// <summary>Writes queued frames, batch after batch, until none are left.</summary>
    /// <exception cref="IOException">A write failed; the queue is dropped and later writes fail too.</exception>
    public async ValueTask FlushQueuedAsync()
    {
        while (true)
        {
            ArrayBufferWriter<byte> batch;
            lock (_lock)
            {
                if (_pending.WrittenCount == 0 || _failure is not null)
                {
                    _flushing = false;
                    return;
                }

                batch = _pending;
                _pending = _spare;
                _spare = batch;
            }

            try
            {
                await _stream.WriteAsync(batch.WrittenMemory, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException or InvalidOperationException
                                      or System.Net.Sockets.SocketException)
            {
                lock (_lock)
                {
                    _failure ??= e;
                    _pending.ResetWrittenCount();
                    _flushing = false;
                }

                _onFailure?.Invoke(e);
                throw new IOException($"ttrpc: connection write failed: {e.Message}", e);
            }
            finally
            {
                batch.ResetWrittenCount();
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            _failure ??= new ObjectDisposedException(nameof(FrameWriter));
        }
    }
}
