using System.Buffers;

namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>
/// Writes whole frames to a byte stream so concurrent senders never interleave bytes. Frames queued while a
/// write is under way go out together in the next write (group commit), so many concurrent answers cost few
/// system calls; each sender's task completes once the write holding its frame is done.
/// </summary>
public sealed class FrameWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly Lock _lock = new();
    private ArrayBufferWriter<byte> _pending = new(64 * 1024);
    private ArrayBufferWriter<byte> _spare = new(64 * 1024);
    private TaskCompletionSource _pendingWritten = NewBatch();
    private bool _flushing;
    private Exception? _failure;

    /// <summary>Writes to <paramref name="stream"/>; the caller keeps ownership of it.</summary>
    public FrameWriter(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
    }

    /// <summary>Writes one frame (header and body together) and waits until it is written.</summary>
    /// <exception cref="ArgumentException">The body is larger than <see cref="FrameHeader.MaxDataLength"/>.</exception>
    /// <remarks>Once a frame is queued it is written even if <paramref name="cancellationToken"/> fires; a half-written frame would break the stream.</remarks>
    public async ValueTask WriteAsync(uint streamId, FrameType type, FrameFlagBits flags, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var queued = Enqueue(streamId, type, flags, payload);
        if (queued.MustFlush)
        {
            await FlushQueuedAsync().ConfigureAwait(false);
        }

        await queued.Written.ConfigureAwait(false);
    }

    /// <summary>
    /// Queues one frame without waiting. Frames go on the wire in the order they are queued. When
    /// <see cref="QueuedFrame.MustFlush"/> is set the caller must call <see cref="FlushQueuedAsync"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The body is larger than <see cref="FrameHeader.MaxDataLength"/>.</exception>
    /// <exception cref="IOException">An earlier write on this stream failed.</exception>
    public QueuedFrame Enqueue(uint streamId, FrameType type, FrameFlagBits flags, ReadOnlyMemory<byte> payload)
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
            return new QueuedFrame(_pendingWritten.Task, mustFlush);
        }
    }

    /// <summary>Writes queued frames, batch after batch, until none are left.</summary>
    public async Task FlushQueuedAsync()
    {
        while (true)
        {
            ArrayBufferWriter<byte> batch;
            TaskCompletionSource batchWritten;
            lock (_lock)
            {
                if (_pending.WrittenCount == 0)
                {
                    _flushing = false;
                    return;
                }

                batch = _pending;
                batchWritten = _pendingWritten;
                _pending = _spare;
                _pendingWritten = NewBatch();
            }

            try
            {
                await _stream.WriteAsync(batch.WrittenMemory, CancellationToken.None).ConfigureAwait(false);
                batchWritten.TrySetResult();
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException or InvalidOperationException
                                      or System.Net.Sockets.SocketException)
            {
                lock (_lock)
                {
                    _failure ??= e;
                }

                batchWritten.TrySetException(e);
            }

            batch.ResetWrittenCount();
            lock (_lock)
            {
                _spare = batch;
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

    private static TaskCompletionSource NewBatch() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>A frame in the write queue.</summary>
/// <param name="Written">Completes when the write holding the frame is done (faults if it failed).</param>
/// <param name="MustFlush">The caller started the queue and must call <see cref="FrameWriter.FlushQueuedAsync"/>.</param>
public readonly record struct QueuedFrame(Task Written, bool MustFlush);
