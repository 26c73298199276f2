using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Vm;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>
/// A container's root file system in its VM: a free stub-drive slot, the slot's drive patched to the file system
/// image, and the agent's mount of it at <c>/container/&lt;id&gt;/rootfs</c>. The image is the snapshot's own block
/// file when containerd's snapshotter made one (blockfile), else an ext4 copy of containerd's rootfs mounts built in
/// the VM directory. <see cref="DetachAsync"/> undoes what was done, last first, for a Create that failed half-way
/// and for a Delete alike; a snapshot's block file is let go by the VMM before containerd can remove it.
/// </summary>
internal sealed partial class ContainerRootfs : IAsyncDisposable
{
    /// <summary>The file system of every container image: what <see cref="RootfsImage"/> makes.</summary>
    private const string FilesystemType = "ext4";

    private readonly MicroVm _vm;
    private readonly ILogger _logger;
    private bool _patched;
    private bool _mounted;
    private int _detached;

    private ContainerRootfs(MicroVm vm, string containerId, int slot, string driveId, RootfsBlockFile? blockFile, ILogger logger)
    {
        _vm = vm;
        _logger = logger;
        ContainerId = containerId;
        Slot = slot;
        DriveId = driveId;
        BlockFile = blockFile;
    }

    /// <summary>The container whose root this is.</summary>
    public string ContainerId { get; }

    /// <summary>The VM's container slot the image occupies.</summary>
    public int Slot { get; }

    /// <summary>The stub drive of <see cref="Slot"/>, which the agent finds the image by.</summary>
    public string DriveId { get; }

    /// <summary>The snapshot's block file the drive is, or null when the drive is a copy at <see cref="ImagePath"/>.</summary>
    public RootfsBlockFile? BlockFile { get; }

    /// <summary>The copied image file in the VM directory (unused when the drive is <see cref="BlockFile"/>).</summary>
    public string ImagePath => _vm.ImagePath(Slot);

    /// <summary>Where the agent mounts the image in the guest.</summary>
    public string GuestPath => BundleDir.VMBundleDir(ContainerId).RootfsPath;

    /// <summary>
    /// Patches a free slot's drive to <paramref name="request"/>'s rootfs and has the agent mount it: the snapshot's
    /// block file as it is, or else an image built from the rootfs mounts. Without rootfs mounts the rootfs is
    /// already in place in the bundle (a spec that brings its own root), and is copied from there. On any failure
    /// nothing of it is left.
    /// </summary>
    /// <exception cref="InvalidRootfsException">containerd's mounts can be neither attached nor turned into an image.</exception>
    /// <exception cref="InvalidOperationException">Every slot of the VM is taken.</exception>
    public static async Task<ContainerRootfs> AttachAsync(
        MicroVm vm, CreateTaskRequest request, RootfsImageBuilder build, ILogger logger, CancellationToken cancellationToken)
    {
        IReadOnlyList<Mount> mounts = request.Rootfs.Count > 0
            ? request.Rootfs
            : [new Mount { Type = "bind", Source = new BundleDir(request.Bundle).RootfsPath, Options = { "rbind", "ro" } }];
        RootfsBlockFile? blockFile = RootfsBlockFile.TryParse(mounts);
        var (slot, driveId) = vm.AcquireSlot(request.Id);
        var rootfs = new ContainerRootfs(vm, request.Id, slot, driveId, blockFile, logger);
        try
        {
            string drive;
            IEnumerable<string> options = [];
            if (blockFile is null)
            {
                await build(mounts, rootfs.ImagePath, cancellationToken).ConfigureAwait(false);
                LogCopied(logger, request.Id, request.Rootfs.Count > 0 ? request.Rootfs[0].Type : "bundle's rootfs bind");
                drive = rootfs.ImagePath;
            }
            else
            {
                LogAttached(logger, request.Id, blockFile.Path);
                drive = blockFile.Path;
                options = blockFile.Options;
            }

            rootfs._patched = true;
            await vm.Machine.PatchDriveAsync(driveId, drive, cancellationToken).ConfigureAwait(false);
            LogStep(logger, request.Id, "drive patched");
            await vm.Agent.MountDriveAsync(driveId, rootfs.GuestPath, FilesystemType, options, cancellationToken).ConfigureAwait(false);
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
    /// Unmounts the image in the guest (unless the VMM has exited: nothing is mounted any more, and the VMM holds no
    /// file), patches a snapshot's block file out of the drive, frees the slot and deletes a copied image. Only the
    /// first call acts; an unmount or patch the VM refuses is logged.
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

        // The unmount flushed the guest's writes; the stub takes the file's place so that the VMM closes it before
        // containerd removes the snapshot, and a container that takes this slot next never sees it.
        if (BlockFile is not null && _patched && !_vm.Machine.Exited.IsCompleted)
        {
            await CleanupStep.RunAsync(() => _vm.Machine.PatchDriveAsync(DriveId, _vm.StubPath(Slot), cancellationToken), _logger).ConfigureAwait(false);
        }

        _vm.ReleaseSlot(Slot);
        File.Delete(ImagePath);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync() => await DetachAsync(CancellationToken.None).ConfigureAwait(false);

    [LoggerMessage(Level = LogLevel.Debug, Message = "create {Id}: {Step}")]
    private static partial void LogStep(ILogger logger, string id, string step);

    [LoggerMessage(Level = LogLevel.Information, Message = "create {Id}: rootfs is the snapshot's block file {Path}, attached as the container's drive without a copy")]
    private static partial void LogAttached(ILogger logger, string id, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "create {Id}: rootfs copied into an ext4 image from containerd's {Type} mount")]
    private static partial void LogCopied(ILogger logger, string id, string type);
}
