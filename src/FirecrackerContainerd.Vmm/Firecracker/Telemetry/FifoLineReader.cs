using System.Threading.Channels;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vmm.Firecracker.Telemetry;

/// <summary>Drains a FIFO continuously into lines and hands them to a consumer without ever making the writer wait.</summary>
/// <remarks>
/// Firecracker writes logs and metrics with non-blocking writes and drops a line when the FIFO is
/// full, so a slow reader silently loses data and, with a blocking writer, would stall the VMM.
/// Design: one dedicated thread owns the FIFO. It opens it <c>O_RDWR|O_NONBLOCK</c> (the open never
/// waits for a writer, and a writer that closes and reopens never causes end of file), sleeps in
/// poll(2) and reads everything available. Lines go to an in-memory queue bounded in bytes; the
/// consumer runs on its own task. When the consumer falls behind, new lines are dropped and counted
/// here instead of leaving them in the kernel buffer, so the FIFO is emptied as fast as the writer
/// fills it whatever the consumer does. Memory is bounded by <see cref="MaxLineBytes"/> plus the
/// queue budget. An eventfd wakes the thread for a prompt stop.
/// </remarks>
internal sealed class FifoLineReader : IAsyncDisposable
{
    /// <summary>Longer lines are cut here and the rest up to the newline is discarded (counted in <see cref="TruncatedLines"/>).</summary>
    public const int MaxLineBytes = 64 * 1024;

    /// <summary>How many bytes of lines may wait for a slow consumer before new ones are dropped.</summary>
    public const int DefaultQueueBudgetBytes = 4 * 1024 * 1024;

    private const int ReadChunkBytes = 64 * 1024;

    private readonly string _path;
    private readonly Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> _consumer;
    private readonly long _queueBudgetBytes;
    private readonly Channel<byte[]> _queue = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly int _fd;
    private readonly int _wakeFd;
    private readonly Thread _thread;
    private readonly Task _consumerTask;
    private readonly TaskCompletionSource _readerDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _queuedBytes;
    private long _linesRead;
    private long _linesDropped;
    private long _linesTruncated;
    private long _consumerErrors;
    private long _bytesRead;
    private int _disposed;

    private FifoLineReader(string path, int fd, int wakeFd, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> consumer, long queueBudgetBytes)
    {
        _path = path;
        _fd = fd;
        _wakeFd = wakeFd;
        _consumer = consumer;
        _queueBudgetBytes = queueBudgetBytes;
        _thread = new Thread(ReadLoop) { IsBackground = true, Name = "fifo " + Path.GetFileName(path) };
        _thread.Start();
        _consumerTask = Task.Run(ConsumeAsync);
    }

    /// <summary>Lines taken out of the FIFO.</summary>
    public long LinesRead => Interlocked.Read(ref _linesRead);

    /// <summary>Lines discarded because the consumer was behind by more than the queue budget.</summary>
    public long LinesDropped => Interlocked.Read(ref _linesDropped);

    /// <summary>Lines cut at <see cref="MaxLineBytes"/>.</summary>
    public long TruncatedLines => Interlocked.Read(ref _linesTruncated);

    /// <summary>Lines whose consumer threw; the reader goes on with the next line.</summary>
    public long ConsumerErrors => Interlocked.Read(ref _consumerErrors);

    /// <summary>Bytes taken out of the FIFO.</summary>
    public long BytesRead => Interlocked.Read(ref _bytesRead);

    /// <summary>Creates the FIFO when missing (mode 0600), opens it without blocking and starts draining it.</summary>
    /// <param name="path">The FIFO's path.</param>
    /// <param name="consumer">Called once per line, without the newline; the memory is valid only during the call.</param>
    /// <param name="queueBudgetBytes">Bytes of lines that may wait for the consumer.</param>
    public static FifoLineReader Start(
        string path, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> consumer, long queueBudgetBytes = DefaultQueueBudgetBytes)
    {
        ArgumentNullException.ThrowIfNull(consumer);
        FirecrackerContainerd.Core.Fifo.Create(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var fd = Interop.Open(path, Libc.O_RDWR | Libc.O_NONBLOCK);
        int wakeFd;
        try
        {
            wakeFd = Interop.EventFd(path);
        }
        catch
        {
            Libc.CloseQuietly(fd);
            throw;
        }

        return new FifoLineReader(path, fd, wakeFd, consumer, queueBudgetBytes);
    }

    /// <summary>Stops reading and consuming (lines still queued count as dropped) and closes the FIFO.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Interop.Signal(_wakeFd, _path);
        await _readerDone.Task.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _stop.CancelAsync().ConfigureAwait(false);
        await _consumerTask.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        while (_queue.Reader.TryRead(out _))
        {
            Interlocked.Increment(ref _linesDropped);
        }

        _stop.Dispose();
        Libc.CloseQuietly(_fd);
        Libc.CloseQuietly(_wakeFd);
    }

    private void ReadLoop()
    {
        var chunk = new byte[ReadChunkBytes];
        var line = new byte[MaxLineBytes];
        var lineLength = 0;
        var discardingRest = false;
        Span<Libc.PollFd> fds = stackalloc Libc.PollFd[2];
        try
        {
            while (true)
            {
                fds[0] = new Libc.PollFd { Fd = _fd, Events = Libc.POLLIN };
                fds[1] = new Libc.PollFd { Fd = _wakeFd, Events = Libc.POLLIN };
                Interop.Poll(fds, -1, _path);
                if (fds[1].REvents != 0)
                {
                    break;
                }

                if ((fds[0].REvents & (Interop.POLLERR | Interop.POLLNVAL)) != 0)
                {
                    throw new IOException($"poll {_path}: the FIFO reports an error (revents 0x{fds[0].REvents:x})");
                }

                int n;
                while ((n = Interop.Read(_fd, chunk, _path)) > 0)
                {
                    Interlocked.Add(ref _bytesRead, n);
                    SplitLines(chunk.AsSpan(0, n), line, ref lineLength, ref discardingRest);
                }
            }

            _queue.Writer.TryComplete();
            _readerDone.TrySetResult();
        }
        catch (Exception e)
        {
            _queue.Writer.TryComplete(e);
            _readerDone.TrySetException(e);
        }
    }

    private void SplitLines(ReadOnlySpan<byte> data, byte[] line, ref int lineLength, ref bool discardingRest)
    {
        while (!data.IsEmpty)
        {
            var newline = data.IndexOf((byte)'\n');
            var piece = newline < 0 ? data : data[..newline];
            if (!discardingRest)
            {
                var room = line.Length - lineLength;
                if (piece.Length > room)
                {
                    piece[..room].CopyTo(line.AsSpan(lineLength));
                    lineLength = line.Length;
                    Interlocked.Increment(ref _linesTruncated);
                    Emit(line.AsSpan(0, lineLength));
                    lineLength = 0;
                    discardingRest = true;
                }
                else
                {
                    piece.CopyTo(line.AsSpan(lineLength));
                    lineLength += piece.Length;
                }
            }

            if (newline < 0)
            {
                return;
            }

            if (!discardingRest && lineLength > 0)
            {
                Emit(line.AsSpan(0, lineLength));
            }

            lineLength = 0;
            discardingRest = false;
            data = data[(newline + 1)..];
        }
    }

    private void Emit(ReadOnlySpan<byte> line)
    {
        Interlocked.Increment(ref _linesRead);
        if (Interlocked.Read(ref _queuedBytes) + line.Length > _queueBudgetBytes)
        {
            Interlocked.Increment(ref _linesDropped);
            return;
        }

        Interlocked.Add(ref _queuedBytes, line.Length);
        _queue.Writer.TryWrite(line.ToArray());
    }

    private async Task ConsumeAsync()
    {
        await foreach (var line in _queue.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
        {
            Interlocked.Add(ref _queuedBytes, -line.Length);
            try
            {
                await _consumer(line, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // A sink failure must not stop the draining, or Firecracker's lines would pile up unread.
                Interlocked.Increment(ref _consumerErrors);
            }
        }
    }
}
