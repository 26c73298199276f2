namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>The daemon's exit switch: the Task service (Shutdown) or a signal flips it; the daemon then stops serving.</summary>
public sealed class ShimLifetime
{
    private readonly TaskCompletionSource<string> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes with the reason once an exit was requested.</summary>
    public Task<string> ExitRequested => _exit.Task;

    /// <summary>Asks the daemon to exit after answers in flight are written; later requests are ignored.</summary>
    public void RequestExit(string reason) => _exit.TrySetResult(reason);
}
