using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Vm;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>
/// A container's root file system in its VM: a free stub-drive slot, the ext4 image built from containerd's rootfs
/// mounts into the VM directory, the slot's drive patched to that image, and the agent's mount of it at
/// <c>/container/&lt;id&gt;/rootfs</c>. <see cref="DetachAsync"/> undoes what was done, last first, for a Create
/// that failed half-way and for a Delete alike.
/// </summary>
internal sealed partial class ContainerRootfs : IAsyncDisposable
{
    /// <summary>The file system of every container image: what <see cref="RootfsImage"/> makes.</summary>
    private const string FilesystemType = "ext4";

    private readonly MicroVm _vm;
    private readonly ILogger _logger;
    private bool _mounted;
    private int _detached;

    private ContainerRootfs(MicroVm vm, string containerId, int slot, string driveId, ILogger logger)
    {
        _vm = vm;
        _logger = logger;
        ContainerId = containerId;
        Slot = slot;
        DriveId = driveId;
    }

    /// <summary>The container whose root this is.</summary>
    public string ContainerId { get; }

    /// <summary>The VM's container slot the image occupies.</summary>
    public int Slot { get; }

    /// <summary>The stub drive of <see cref="Slot"/>, which the agent finds the image by.</summary>
    public string DriveId { get; }

    /// <summary>The image file in the VM directory.</summary>
    public string ImagePath => _vm.ImagePath(Slot);

    /// <summary>Where the agent mounts the image in the guest.</summary>
    public string GuestPath => BundleDir.VMBundleDir(ContainerId).RootfsPath;

    /// <summary>
    /// Builds the image of <paramref name="request"/>'s rootfs, patches a free slot's drive to it and has the agent
    /// mount it. Without rootfs mounts the rootfs is already in place in the bundle (a spec that brings its own root),
    /// and is taken from there. On any failure nothing of it is left.
    /// </summary>
    /// <exception cref="InvalidRootfsException">containerd's mounts cannot be turned into an image.</exception>
    /// <exception cref="InvalidOperationException">Every slot of the VM is taken.</exception>
    public static async Task<ContainerRootfs> AttachAsync(
        MicroVm vm, CreateTaskRequest request, RootfsImageBuilder build, ILogger logger, CancellationToken cancellationToken)
    {
        IReadOnlyList<Mount> mounts = request.Rootfs.Count > 0
            ? request.Rootfs
            : [new Mount { Type = "bind", Source = new BundleDir(request.Bundle).RootfsPath, Options = { "rbind", "ro" } }];
        var (slot, driveId) = vm.AcquireSlot(request.Id);
        var rootfs = new ContainerRootfs(vm, request.Id, slot, driveId, logger);
        try
        {
            await build(mounts, rootfs.ImagePath, cancellationToken).ConfigureAwait(false);
            LogStep(logger, request.Id, "rootfs image built");
            await vm.Machine.PatchDriveAsync(driveId, rootfs.ImagePath, cancellationToken).ConfigureAwait(false);
            LogStep(logger, request.Id, "drive patched");
            await vm.Agent.MountDriveAsync(driveId, rootfs.GuestPath, FilesystemType, [], cancellationToken).ConfigureAwait(false);
            rootfs._mounted = true;
            LogStep(logger, request.Id, "drive mounted in the guest");
            return rootfs;
        }
        catch
        {
            await rootfs.DetachAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Unmounts the image in the guest (unless the VMM has exited: nothing is mounted any more), frees the slot and
    /// deletes the image. Only the first call acts; an unmount the agent refuses is logged.
    /// </summary>
    public async Task DetachAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _detached, 1) != 0)
        {
            return;
        }

        if (_mounted && !_vm.Machine.Exited.IsCompleted)
        {
            await CleanupStep.RunAsync(() => _vm.Agent.UnmountDriveAsync(DriveId, cancellationToken), _logger).ConfigureAwait(false);
        }

        _vm.ReleaseSlot(Slot);
        File.Delete(ImagePath);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync() => await DetachAsync(CancellationToken.None).ConfigureAwait(false);

    [LoggerMessage(Level = LogLevel.Debug, Message = "create {Id}: {Step}")]
    private static partial void LogStep(ILogger logger, string id, string step);
}
