using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.TaskV2;
using AgentVersion = FirecrackerContainerd.Protos.Agent.AgentVersion;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// The guest agent as the shim calls it: the task API inside the VM, drive mounts, the metadata document and the
/// agent's event stream. Every answer has been checked by the time it is returned: the guest is not trusted.
/// </summary>
internal interface IGuestAgent : IAsyncDisposable
{
    /// <summary>The agent's version; the first call after a boot, which proves the agent answers.</summary>
    Task<AgentVersion> VersionAsync(CancellationToken cancellationToken);

    /// <summary>Installs the VM's metadata document in the guest, where every container can read it.</summary>
    Task SetMetadataAsync(string json, CancellationToken cancellationToken);

    /// <summary>Has the agent mount stub drive <paramref name="driveId"/> (patched by now) at <paramref name="destination"/>, creating it.</summary>
    Task MountDriveAsync(string driveId, string destination, string filesystemType, IEnumerable<string> options, CancellationToken cancellationToken);

    /// <summary>Has the agent flush and unmount the drive it mounted.</summary>
    Task UnmountDriveAsync(string driveId, CancellationToken cancellationToken);

    /// <summary>
    /// Has the agent mount an overlay at <paramref name="destination"/> over the drives it mounted,
    /// <paramref name="lowerDriveIds"/> top first, with its writable upper layer on a guest tmpfs of at most
    /// <paramref name="upperSizeMib"/> MiB (0: tmpfs's default, half the guest's memory).
    /// </summary>
    Task MountOverlayAsync(string destination, IEnumerable<string> lowerDriveIds, uint upperSizeMib, CancellationToken cancellationToken);

    /// <summary>Has the agent unmount the overlay at <paramref name="destination"/> and drop its upper layer.</summary>
    Task UnmountOverlayAsync(string destination, CancellationToken cancellationToken);

    /// <summary>Has the agent make the pod's directories and shared memory in the guest (once; later calls do nothing).</summary>
    Task PreparePodAsync(string sandboxId, CancellationToken cancellationToken);

    /// <summary>Puts one file of the pod's into the guest.</summary>
    Task PutPodFileAsync(string sandboxId, string name, ReadOnlyMemory<byte> content, UnixFileMode mode, CancellationToken cancellationToken);

    /// <summary>Has the agent make an emptyDir volume of the pod's in the guest, if it is not there yet.</summary>
    Task EnsurePodVolumeAsync(string sandboxId, string name, CancellationToken cancellationToken);

    /// <summary>Has the agent set the pod's network sysctls in the guest's network namespace, the pod's.</summary>
    Task SetPodNetworkSysctlsAsync(string sandboxId, IReadOnlyDictionary<string, string> sysctls, CancellationToken cancellationToken);

    /// <summary>Waits for the guest's next task event.</summary>
    /// <exception cref="InvalidDataException">The agent sent something that is not a task event.</exception>
    Task<Envelope> NextEventAsync(CancellationToken cancellationToken);

    /// <summary>Creates the container in the guest; returns its guest pid.</summary>
    Task<uint> CreateAsync(CreateTaskRequest request, CancellationToken cancellationToken);

    /// <summary>Starts a created container or exec; returns its guest pid.</summary>
    Task<uint> StartAsync(StartRequest request, CancellationToken cancellationToken);

    /// <summary>Deletes an exited container or exec in the guest.</summary>
    Task<DeleteResponse> DeleteAsync(DeleteRequest request, CancellationToken cancellationToken);

    /// <summary>The container's processes.</summary>
    Task<PidsResponse> PidsAsync(PidsRequest request, CancellationToken cancellationToken);

    /// <summary>Signals a container or exec.</summary>
    Task KillAsync(KillRequest request, CancellationToken cancellationToken);

    /// <summary>Adds an exec process to a container.</summary>
    Task ExecAsync(ExecProcessRequest request, CancellationToken cancellationToken);

    /// <summary>Freezes a container.</summary>
    Task PauseAsync(PauseRequest request, CancellationToken cancellationToken);

    /// <summary>Thaws a container.</summary>
    Task ResumeAsync(ResumeRequest request, CancellationToken cancellationToken);

    /// <summary>Closes a process's stdin.</summary>
    Task CloseIOAsync(CloseIORequest request, CancellationToken cancellationToken);

    /// <summary>Updates a container's resources.</summary>
    Task UpdateAsync(UpdateTaskRequest request, CancellationToken cancellationToken);

    /// <summary>Resizes a process's terminal.</summary>
    Task ResizePtyAsync(ResizePtyRequest request, CancellationToken cancellationToken);

    /// <summary>The container's cgroup statistics.</summary>
    Task<StatsResponse> StatsAsync(StatsRequest request, CancellationToken cancellationToken);
}
