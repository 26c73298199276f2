using FirecrackerContainerd.Native;
using Microsoft.Win32.SafeHandles;

namespace FirecrackerContainerd.Core;

/// <summary>
/// One end of a FIFO whose open(2) may still be waiting for the other end. The open runs on its own
/// thread; cancelling or disposing before it completes wakes that thread by briefly opening the
/// other end, so no thread is left blocked.
/// </summary>
public sealed class FifoStream : Stream
{
    private static readonly TimeSpan UnblockGiveUp = TimeSpan.FromSeconds(5);

    private readonly string _path;
    private readonly FifoMode _access;
    private readonly TaskCompletionSource<FileStream> _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private readonly CancellationTokenRegistration _registration;
    private volatile bool _openCallReturned;
    private bool _abandoned;
    private FileStream? _inner;

    internal FifoStream(string path, FifoMode access, CancellationToken cancellationToken)
    {
        _path = path;
        _access = access;
        if (access == FifoMode.ReadWrite)
        {
            // O_RDWR on a FIFO never waits for a peer.
            OpenBlocking();
        }
        else
        {
            var thread = new Thread(OpenBlocking) { IsBackground = true, Name = "fifo-open" };
            thread.Start();
            _registration = cancellationToken.Register(
                static state => ((FifoStream)state!).Abandon(new OperationCanceledException("fifo open cancelled")), this);
        }
    }

    /// <summary>Completes when the FIFO is open; faults when the open failed, was cancelled or the stream was disposed first.</summary>
    public Task WhenOpen => _opened.Task;

    /// <summary>The FIFO's path.</summary>
    public string Path => _path;

    /// <inheritdoc/>
    public override bool CanRead => (_access & FifoMode.Read) != 0;

    /// <inheritdoc/>
    public override bool CanWrite => (_access & FifoMode.Write) != 0;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <inheritdoc/>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        FileStream inner = await _opened.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        return ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    /// <inheritdoc/>
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        FileStream inner = await _opened.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        return WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    // The synchronous Stream members wait for the open on the calling thread, as a blocking fd would.
    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => Opened().Read(buffer, offset, count);

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => Opened().Write(buffer, offset, count);

    /// <inheritdoc/>
    public override void Flush()
    {
        if (_opened.Task.IsCompletedSuccessfully)
        {
            _opened.Task.Result.Flush();
        }
    }

    /// <inheritdoc/>
    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        return _opened.Task.IsCompletedSuccessfully ? _opened.Task.Result.FlushAsync(cancellationToken) : Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _registration.Dispose();
            Abandon(new ObjectDisposedException(nameof(FifoStream), $"fifo {_path} was closed before it opened"));
            lock (_gate)
            {
                _inner?.Dispose();
            }
        }

        base.Dispose(disposing);
    }

    private FileStream Opened()
    {
        return _opened.Task.GetAwaiter().GetResult();
    }

    private void OpenBlocking()
    {
        int flags = _access switch
        {
            FifoMode.Read => Libc.O_RDONLY,
            FifoMode.Write => Libc.O_WRONLY,
            _ => Libc.O_RDWR,
        };
        int fd = Interop.Open(_path, flags);
        _openCallReturned = true;
        lock (_gate)
        {
            if (fd < 0)
            {
                _opened.TrySetException(new UnixIOException(-fd, $"failed to open fifo {_path}: {Interop.ErrnoText(-fd)}"));
                return;
            }

            if (_abandoned)
            {
                Libc.Close(fd);
                return;
            }

            var handle = new SafeFileHandle(fd, ownsHandle: true);
            var access = _access switch
            {
                FifoMode.Read => FileAccess.Read,
                FifoMode.Write => FileAccess.Write,
                _ => FileAccess.ReadWrite,
            };
            _inner = new FileStream(handle, access, bufferSize: 0, isAsync: false);
            _opened.TrySetResult(_inner);
        }
    }

    private void Abandon(Exception reason)
    {
        lock (_gate)
        {
            if (_opened.Task.IsCompleted)
            {
                return;
            }

            _abandoned = true;
            _opened.TrySetException(reason);
        }

        _ = Task.Run(UnblockPendingOpen);
    }

    // Wakes the thread waiting in open(2): a peer that opens the other end, even briefly, releases it.
    private void UnblockPendingOpen()
    {
        int otherEnd = (_access == FifoMode.Read ? Libc.O_WRONLY : Libc.O_RDONLY) | Libc.O_NONBLOCK;
        DateTime giveUp = DateTime.UtcNow + UnblockGiveUp;
        while (!_openCallReturned && DateTime.UtcNow < giveUp)
        {
            int fd = Interop.Open(_path, otherEnd);
            if (fd >= 0)
            {
                // Keep the peer end open until the waiting open returns, so the wake-up cannot be missed.
                SpinWait.SpinUntil(() => _openCallReturned, TimeSpan.FromMilliseconds(200));
                Libc.Close(fd);
            }
            else
            {
                Thread.Sleep(10);
            }
        }
    }
}
