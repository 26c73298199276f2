using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc.Server;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>What one shim daemon serves on its socket: the runtime's Task service, and any ttrpc services of its own beside it.</summary>
/// <param name="Tasks">The Task service, registered under containerd's v2 and v3 names.</param>
/// <param name="AddOthers">Registers the runtime's other services in the daemon's registry; null for none.</param>
public sealed record ShimServices(ITaskService Tasks, Action<TtrpcServiceRegistry>? AddOthers = null);
