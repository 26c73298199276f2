using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Shim.Tasks;

namespace FirecrackerContainerd.Runtime;

/// <summary>The aws.firecracker runtime as plugged into the shim plumbing.</summary>
public sealed class FirecrackerShimRuntime : IShimRuntime
{
    /// <summary>
    /// One shim per VM: tasks that name the same VM (annotation aws.firecracker.vm.id) share a shim and so a
    /// VM; a task without the annotation gets a VM of its own, named after the task.
    /// </summary>
    public string SocketKey(ShimArguments arguments, string bundlePath)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        try
        {
            return new BundleDir(bundlePath).VMID() is { Length: > 0 } vmId && Identifiers.IsValid(vmId) ? vmId : arguments.Id;
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            return arguments.Id;
        }
    }

    /// <inheritdoc/>
    public ITaskService CreateTaskService(ShimDaemonContext context) => new VmTaskService(context);

    /// <summary>The VM and everything in it die with the shim's process (its VMM is tied to it), so nothing is left to release.</summary>
    public Task<DeleteResponse> CleanupAsync(ShimArguments arguments, string bundlePath, CancellationToken cancellationToken) =>
        Task.FromResult(ShimProgram.KilledNow());
}
