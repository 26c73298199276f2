using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Arguments;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>What a runtime plugs into the shim plumbing: its socket key, its services and its clean-up for <c>delete</c>.</summary>
public interface IShimRuntime
{
    /// <summary>
    /// The id the shim socket is keyed by. The task id gives one shim per task; a runtime that runs several
    /// tasks in one shim (one per VM) returns the group's id, read from the bundle.
    /// </summary>
    string SocketKey(ShimArguments arguments, string bundlePath);

    /// <summary>
    /// Creates what the daemon serves: the Task service and the runtime's own ttrpc services beside it, on the same
    /// socket. They are made together, so a runtime can build them over the state they share.
    /// </summary>
    ShimServices CreateServices(ShimDaemonContext context);

    /// <summary>
    /// Releases whatever the task held after its shim is gone (the <c>delete</c> verb); must be quick and idempotent.
    /// The plumbing prints the returned response.
    /// </summary>
    Task<DeleteResponse> CleanupAsync(ShimArguments arguments, string bundlePath, CancellationToken cancellationToken);
}
