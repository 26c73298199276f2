using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Rootfs;

namespace FirecrackerContainerd.Runtime.Tasks;

/// <summary>A container this shim created in its VM: containerd's Create request, its rootfs in the VM, its init process and its execs.</summary>
/// <param name="Request">What containerd asked for.</param>
/// <param name="Rootfs">Its root file system in the VM, detached when it is deleted.</param>
/// <param name="Init">Its init process.</param>
internal sealed record TaskRecord(CreateTaskRequest Request, ContainerRootfs Rootfs, ProcessRecord Init)
{
    /// <summary>The task's id.</summary>
    public string Id => Request.Id;

    /// <summary>Its exec processes by exec id; only <see cref="TaskTable"/> touches them, under its lock.</summary>
    internal Dictionary<string, ProcessRecord> Execs { get; } = new(StringComparer.Ordinal);
}
