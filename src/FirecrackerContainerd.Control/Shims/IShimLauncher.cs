namespace FirecrackerContainerd.Control.Shims;

/// <summary>Starts a VM's shim and, after the shim is gone, lets it clean up what it left.</summary>
public interface IShimLauncher
{
    /// <summary>Starts the shim for <paramref name="endpoint"/> with <paramref name="bundle"/> as its working directory; returns when it serves.</summary>
    Task StartAsync(ShimEndpoint endpoint, VmBundle bundle, CancellationToken cancellationToken);

    /// <summary>Cleans up after a shim that is no longer running (its VM directory, stale socket).</summary>
    Task CleanupAsync(ShimEndpoint endpoint, VmBundle bundle, CancellationToken cancellationToken);
}
