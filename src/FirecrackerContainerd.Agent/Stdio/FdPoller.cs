using System.Collections.Concurrent;
using FirecrackerContainerd.Agent.Native;

namespace FirecrackerContainerd.Agent.Stdio;

/// <summary>
/// Waits for non-blocking fds (pipes, terminal masters) to become readable or writable, all of them in one epoll
/// thread, so that a relay waiting for a quiet container holds no thread. .NET reads a pipe or terminal through a
/// thread that blocks in read(2); with a thread per stream, a one-vCPU guest's thread pool starved.
/// </summary>
internal sealed class FdPoller
{
    private readonly int _epoll;
    private readonly ConcurrentDictionary<ulong, TaskCompletionSource> _waiters = new();
    private long _nextTag;

    private FdPoller()
    {
        _epoll = Interop.EpollCreate();
        var thread = new Thread(PollForever) { IsBackground = true, Name = "fd poller" };
        thread.Start();
    }

    /// <summary>The agent's one poller, started on first use; it lives as long as the process.</summary>
    public static FdPoller Shared => LazyShared.Value;

    private static Lazy<FdPoller> LazyShared { get; } = new(() => new FdPoller());

    /// <summary>
    /// Completes once <paramref name="fd"/> is ready for <paramref name="events"/> (<see cref="Interop.EPOLLIN"/> or
    /// <see cref="Interop.EPOLLOUT"/>), or has hung up or failed, which the next read or write then reports.
    /// One wait per fd at a time; the caller removes the fd (<see cref="Forget"/>) before closing it.
    /// </summary>
    public async Task WaitAsync(int fd, uint events, string what, CancellationToken cancellationToken)
    {
        ulong tag = (ulong)Interlocked.Increment(ref _nextTag);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiters[tag] = ready;
        try
        {
            Interop.EpollArm(_epoll, fd, events, tag, what);
            await ready.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _waiters.TryRemove(tag, out _);
        }
    }

    /// <summary>Stops watching <paramref name="fd"/>; call before closing it, since its number may be reused.</summary>
    public void Forget(int fd) => Interop.EpollRemove(_epoll, fd);

    private void PollForever()
    {
        Span<ulong> ready = stackalloc ulong[64];
        while (true)
        {
            int n = Interop.EpollWait(_epoll, ready);
            for (int i = 0; i < n; i++)
            {
                if (_waiters.TryRemove(ready[i], out TaskCompletionSource? waiter))
                {
                    waiter.TrySetResult();
                }
            }
        }
    }
}
