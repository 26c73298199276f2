using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc.Server;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>What a runtime plugs into the shim plumbing: its Task service and its clean-up for <c>delete</c>.</summary>
public interface IShimRuntime
{
    /// <summary>
    /// The id the shim socket is keyed by. The task id gives one shim per task; a runtime that runs several
    /// tasks in one shim (one per VM) returns the group's id, read from the bundle.
    /// </summary>
    string SocketKey(ShimArguments arguments, string bundlePath);

    /// <summary>Creates the Task service the daemon serves.</summary>
    ITaskService CreateTaskService(ShimDaemonContext context);

    /// <summary>
    /// Registers the runtime's own ttrpc services beside the Task service, on the same socket. They get the
    /// Task service <paramref name="taskService"/> the daemon created, so they can share its state. None by default.
    /// </summary>
    void AddServices(TtrpcServiceRegistry registry, ITaskService taskService, ShimDaemonContext context)
    {
    }

    /// <summary>
    /// Releases whatever the task held after its shim is gone (the <c>delete</c> verb); must be quick and idempotent.
    /// The plumbing prints the returned response.
    /// </summary>
    Task<DeleteResponse> CleanupAsync(ShimArguments arguments, string bundlePath, CancellationToken cancellationToken);
}
