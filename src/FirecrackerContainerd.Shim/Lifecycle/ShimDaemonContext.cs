using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Events;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>What the daemon gives the runtime's Task service: who it is, how to publish events and how to exit.</summary>
/// <param name="Arguments">The daemon's command line.</param>
/// <param name="BundlePath">The bundle directory the daemon was started in.</param>
/// <param name="SocketAddress">The <c>unix://</c> address the daemon serves on.</param>
/// <param name="Events">Publisher to containerd's events service.</param>
/// <param name="Lifetime">Lets the service ask the daemon to exit.</param>
/// <param name="Logger">Logs into containerd's log through the bundle's log FIFO.</param>
public sealed record ShimDaemonContext(
    ShimArguments Arguments,
    string BundlePath,
    string SocketAddress,
    IEventPublisher Events,
    ShimLifetime Lifetime,
    ILogger Logger);
