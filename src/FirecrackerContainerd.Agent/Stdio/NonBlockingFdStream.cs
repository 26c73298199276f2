using FirecrackerContainerd.Agent.Native;
using Microsoft.Win32.SafeHandles;

namespace FirecrackerContainerd.Agent.Stdio;

/// <summary>
/// One direction of a pipe end or terminal master, made non-blocking and awaited through <see cref="FdPoller"/>:
/// an asynchronous read or write holds no thread while the container is quiet or not reading. The stream owns
/// the fd. Its read and write errors are IOExceptions whose HResult is the errno (EIO of a hung-up terminal,
/// EPIPE of a reader gone), as FileStream's.
/// </summary>
internal sealed class NonBlockingFdStream : Stream
{
    private readonly SafeFileHandle _handle;
    private readonly bool _forReading;
    private readonly string _what;
    private readonly CancellationTokenSource _closed = new();
    private int _disposed;

    /// <param name="fd">The fd, taken over: it is made non-blocking (with every duplicate of it) and closed with the stream.</param>
    /// <param name="forReading">Whether the stream reads (else it writes).</param>
    /// <param name="what">What the fd is, for errors.</param>
    public NonBlockingFdStream(int fd, bool forReading, string what)
    {
        _handle = new SafeFileHandle(fd, ownsHandle: true);
        _forReading = forReading;
        _what = what;
        Interop.SetNonBlocking(fd, what);
    }

    public override bool CanRead => _forReading;

    public override bool CanWrite => !_forReading;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_forReading)
        {
            throw new NotSupportedException($"{_what} is written, not read");
        }

        while (true)
        {
            int n = WithFd(buffer, static (fd, b, what) => Interop.ReadNonBlocking(fd, b.Span, what));
            if (n >= 0)
            {
                return n;
            }

            await WaitAsync(Interop.EPOLLIN, cancellationToken).ConfigureAwait(false);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_forReading)
        {
            throw new NotSupportedException($"{_what} is read, not written");
        }

        while (!buffer.IsEmpty)
        {
            int n = WithFd(buffer, static (fd, b, what) => Interop.WriteNonBlocking(fd, b.Span, what));
            if (n >= 0)
            {
                buffer = buffer[n..];
                continue;
            }

            await WaitAsync(Interop.EPOLLOUT, cancellationToken).ConfigureAwait(false);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    // The synchronous calls are only for code that insists on them; the relays use the asynchronous ones.
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // A read or write waiting for the fd ends with ObjectDisposedException; the fd leaves the poller
            // before it is closed, since its number may be reused at once.
            _closed.Cancel();
            WithFd(0, static (fd, _, _) =>
            {
                FdPoller.Shared.Forget(fd);
                return 0;
            });
            _handle.Dispose();
            _closed.Dispose();
        }

        base.Dispose(disposing);
    }

    // The fd's number is used only while the handle is held open: once closed, the number may already be another file's.
    private TResult WithFd<TArgument, TResult>(TArgument argument, Func<int, TArgument, string, TResult> call)
    {
        bool held = false;
        try
        {
            _handle.DangerousAddRef(ref held);
            return call((int)_handle.DangerousGetHandle(), argument, _what);
        }
        finally
        {
            if (held)
            {
                _handle.DangerousRelease();
            }
        }
    }

    // Waits for the fd to be ready; a read or write that got EAGAIN calls it, so a busy stream never pays for it.
    private async Task WaitAsync(uint events, CancellationToken callerToken)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(callerToken, _closed.Token);
        Task ready = WithFd((events, cancel.Token), static (fd, wait, what) => FdPoller.Shared.WaitAsync(fd, wait.events, what, wait.Token));
        try
        {
            await ready.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!callerToken.IsCancellationRequested)
        {
            throw new ObjectDisposedException(_what, "the stream was closed while waiting");
        }
    }
}
