namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>
/// The task service's one lock: the calls that change containers and the reports of exits hold it while they act and
/// queue their event, so events leave in the order containerd expects.
/// </summary>
internal sealed class TaskLock : IDisposable
{
    private readonly SemaphoreSlim _semaphore = new(1, 1);
    private readonly Releaser _releaser;

    public TaskLock()
    {
        _releaser = new Releaser(_semaphore);
    }

    /// <summary>Waits for the lock; disposing the result releases it.</summary>
    public async Task<IDisposable> EnterAsync(CancellationToken cancellationToken)
    {
        await _semaphore.WaitAsync(cancellationToken).ConfigureAwait(false);
        return _releaser;
    }

    public void Dispose() => _semaphore.Dispose();

    private sealed class Releaser(SemaphoreSlim semaphore) : IDisposable
    {
        public void Dispose() => semaphore.Release();
    }
}
