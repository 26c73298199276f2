using System.Collections.Concurrent;
using FirecrackerContainerd.Control.Shims;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Control.Service;

/// <summary>
/// What the daemon knows about VMs: where their shims listen, the bundles of the VMs it created, and one lock per VM
/// so that a create and a stop of the same VM do not interleave.
/// </summary>
public sealed partial class VmRegistry
{
    private readonly ConcurrentDictionary<(string Namespace, string VmId), SemaphoreSlim> _locks = new();
    private readonly ILogger _logger;

    /// <summary>Creates the registry.</summary>
    public VmRegistry(string containerdAddress, string stateDir, IShimLauncher launcher, ILogger logger)
    {
        ContainerdAddress = containerdAddress;
        StateDir = stateDir;
        Launcher = launcher;
        _logger = logger;
    }

    /// <summary>containerd's address, which names the shims' sockets.</summary>
    public string ContainerdAddress { get; }

    /// <summary>Where VM bundles live.</summary>
    public string StateDir { get; }

    /// <summary>Starts and cleans up shims.</summary>
    public IShimLauncher Launcher { get; }

    /// <summary>The endpoint of <paramref name="vmId"/> in the call's namespace.</summary>
    /// <exception cref="TtrpcException">InvalidArgument for a bad namespace or VM id.</exception>
    public ShimEndpoint Endpoint(TtrpcCallContext call, string vmId)
    {
        try
        {
            return ShimEndpoint.For(ContainerdAddress, CallNamespace.Of(call), vmId);
        }
        catch (ArgumentException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
        }
    }

    /// <summary>The bundle of a VM this daemon creates.</summary>
    public VmBundle Bundle(ShimEndpoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        return VmBundle.For(StateDir, endpoint.Namespace, endpoint.VmId);
    }

    /// <summary>Holds the VM's lock until the returned handle is disposed.</summary>
    public async Task<IDisposable> LockAsync(ShimEndpoint endpoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var gate = _locks.GetOrAdd((endpoint.Namespace, endpoint.VmId), _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new Release(gate);
    }

    /// <summary>
    /// Forgets a VM whose shim no longer serves: lets the shim binary clean up what the dead shim left, removes a stale
    /// socket and the bundle. Failures are logged, not thrown: the VM is gone either way.
    /// </summary>
    public async Task ForgetAsync(ShimEndpoint endpoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var bundle = Bundle(endpoint);
        try
        {
            if (Directory.Exists(bundle.RootPath))
            {
                await Launcher.CleanupAsync(endpoint, bundle, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (IOException e)
        {
            LogCleanupFailed(_logger, endpoint.VmId, endpoint.Namespace, e.Message);
        }

        try
        {
            await endpoint.RemoveIfStaleAsync(cancellationToken).ConfigureAwait(false);
            bundle.Remove();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogCleanupFailed(_logger, endpoint.VmId, endpoint.Namespace, e.Message);
        }

        LogForgotten(_logger, endpoint.VmId, endpoint.Namespace);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "cleanup of vm {VmId} in namespace {Namespace} failed: {Reason}")]
    private static partial void LogCleanupFailed(ILogger logger, string vmId, string @namespace, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId} in namespace {Namespace} is gone; its bundle is removed")]
    private static partial void LogForgotten(ILogger logger, string vmId, string @namespace);

    private sealed class Release(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
