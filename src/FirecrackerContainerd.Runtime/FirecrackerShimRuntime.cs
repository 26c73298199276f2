using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Shim.Tasks;

namespace FirecrackerContainerd.Runtime;

/// <summary>The aws.firecracker runtime as plugged into the shim plumbing.</summary>
public sealed class FirecrackerShimRuntime : IShimRuntime
{
    /// <summary>One shim per task for now; sharing a shim per VM comes with the VM itself.</summary>
    public string SocketKey(ShimArguments arguments, string bundlePath)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        return arguments.Id;
    }

    /// <inheritdoc/>
    public ITaskService CreateTaskService(ShimDaemonContext context) => new VmPendingTaskService(context);

    /// <summary>No VM, mount or process is ever made for a task yet, so there is nothing to release.</summary>
    public Task<DeleteResponse> CleanupAsync(ShimArguments arguments, string bundlePath, CancellationToken cancellationToken) =>
        Task.FromResult(ShimProgram.KilledNow());
}
