using System.Collections.Immutable;
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
/// the VM directory. An erofs snapshot instead takes one read-only layer slot per layer file, each mounted in the
/// guest under <c>/container/&lt;id&gt;/layers</c>, and an overlay over them at the rootfs (<see cref="ErofsLayers"/>).
/// <see cref="DetachAsync"/> undoes what was done, last first, for a Create that failed half-way and for a Delete
/// alike; a snapshot's files are let go by the VMM before containerd can remove them.
/// </summary>
internal sealed partial class ContainerRootfs : IAsyncDisposable
{
    /// <summary>The file system of every container image: what <see cref="RootfsImage"/> makes.</summary>
    private const string FilesystemType = "ext4";

    private readonly MicroVm _vm;
    private readonly ILogger _logger;
    private readonly ImmutableArray<(int Slot, string DriveId)> _layerSlots;
    private bool _patched;
    private bool _mounted;
    private int _layersPatched;
    private int _layersMounted;
    private bool _overlayMounted;
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

    private ContainerRootfs(MicroVm vm, string containerId, RootfsErofsLayers layers, ImmutableArray<(int Slot, string DriveId)> layerSlots, ILogger logger)
        : this(vm, containerId, slot: -1, driveId: string.Empty, blockFile: null, logger)
    {
        ErofsLayers = layers;
        _layerSlots = layerSlots;
    }

    /// <summary>The container whose root this is.</summary>
    public string ContainerId { get; }

    /// <summary>The VM's container slot the image occupies; -1 for erofs layers, which take layer slots instead.</summary>
    public int Slot { get; }

    /// <summary>The stub drive of <see cref="Slot"/>, which the agent finds the image by; empty when the rootfs is an overlay of erofs layers.</summary>
    public string DriveId { get; }

    /// <summary>The snapshot's block file the drive is, or null when the drive is a copy at <see cref="ImagePath"/>.</summary>
    public RootfsBlockFile? BlockFile { get; }

    /// <summary>The erofs snapshot's layer files attached read-only, or null when the rootfs is one drive.</summary>
    public RootfsErofsLayers? ErofsLayers { get; }

    /// <summary>The copied image file in the VM directory (unused when the drive is <see cref="BlockFile"/>).</summary>
    public string ImagePath => _vm.ImagePath(Slot);

    /// <summary>Where the agent mounts the image in the guest.</summary>
    public string GuestPath => BundleDir.VMBundleDir(ContainerId).RootfsPath;

    /// <summary>
    /// Patches a free slot's drive to <paramref name="request"/>'s rootfs and has the agent mount it: the snapshot's
    /// block file as it is, or else an image built from the rootfs mounts. Without rootfs mounts the rootfs is
    /// already in place in the bundle (a spec that brings its own root), and is copied from there. An erofs snapshot,
    /// in a VM with layer slots, takes a layer slot per layer instead and no container slot. On any failure nothing of
    /// it is left.
    /// </summary>
    /// <exception cref="InvalidRootfsException">containerd's mounts can be neither attached nor turned into an image.</exception>
    /// <exception cref="InvalidOperationException">Every slot of the VM is taken, or fewer layer slots are free than the snapshot has layers.</exception>
    public static async Task<ContainerRootfs> AttachAsync(
        MicroVm vm, CreateTaskRequest request, RootfsImageBuilder build, ILogger logger, CancellationToken cancellationToken)
    {
        IReadOnlyList<Mount> mounts = request.Rootfs.Count > 0
            ? request.Rootfs
            : [new Mount { Type = "bind", Source = new BundleDir(request.Bundle).RootfsPath, Options = { "rbind", "ro" } }];
        RootfsBlockFile? blockFile = RootfsBlockFile.TryParse(mounts);
        if (blockFile is null && vm.LayerSlotCount > 0 && RootfsErofsLayers.TryParse(mounts) is { } layers)
        {
            return await AttachLayersAsync(vm, request.Id, layers, logger, cancellationToken).ConfigureAwait(false);
        }

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

    /// <summary>The guest directory layer <paramref name="index"/> (0 the top layer) is mounted at.</summary>
    public string LayerGuestPath(int index) => $"{BundleDir.VMBundleDir(ContainerId).RootPath}/layers/{index}";

    // Each layer file is patched into a read-only slot and mounted as erofs; then the overlay stacks them, top first.
    private static async Task<ContainerRootfs> AttachLayersAsync(
        MicroVm vm, string containerId, RootfsErofsLayers layers, ILogger logger, CancellationToken cancellationToken)
    {
        foreach (string layer in layers.Layers)
        {
            long size = new FileInfo(layer).Length;
            if (size > MicroVm.LayerSlotBytes)
            {
                throw new InvalidRootfsException(
                    $"rootfs: erofs layer {layer} of container {containerId} holds {size} bytes, more than a layer slot's {MicroVm.LayerSlotBytes}");
            }
        }

        var slots = vm.AcquireLayerSlots(containerId, layers.Layers.Length);
        var rootfs = new ContainerRootfs(vm, containerId, layers, slots, logger);
        try
        {
            LogLayers(logger, containerId, layers.Layers.Length, layers.Layers);
            for (int i = 0; i < slots.Length; i++)
            {
                rootfs._layersPatched = i + 1;
                await vm.Machine.PatchDriveAsync(slots[i].DriveId, layers.Layers[i], cancellationToken).ConfigureAwait(false);
                await vm.Agent.MountDriveAsync(slots[i].DriveId, rootfs.LayerGuestPath(i), "erofs", ["ro"], cancellationToken).ConfigureAwait(false);
                rootfs._layersMounted = i + 1;
            }

            LogStep(logger, containerId, "layers mounted in the guest");
            await vm.Agent.MountOverlayAsync(rootfs.GuestPath, slots.Select(s => s.DriveId), (uint)vm.LayerUpperMib, cancellationToken).ConfigureAwait(false);
            rootfs._overlayMounted = true;
            LogStep(logger, containerId, "overlay mounted in the guest");
            return rootfs;
        }
        catch
        {
            await rootfs.DetachAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    // Last first: the overlay (its upper layer, in guest memory, goes with it), each layer's mount, then each layer's
    // drive back to its stub, so that the VMM holds no layer file once the container is gone.
    private async Task DetachLayersAsync(CancellationToken cancellationToken)
    {
        bool running = !_vm.Machine.Exited.IsCompleted;
        if (_overlayMounted && running)
        {
            await CleanupStep.RunAsync(() => _vm.Agent.UnmountOverlayAsync(GuestPath, cancellationToken), _logger).ConfigureAwait(false);
        }

        for (int i = _layerSlots.Length - 1; i >= 0; i--)
        {
            var (slot, driveId) = _layerSlots[i];
            if (i < _layersMounted && running)
            {
                await CleanupStep.RunAsync(() => _vm.Agent.UnmountDriveAsync(driveId, cancellationToken), _logger).ConfigureAwait(false);
            }

            if (i < _layersPatched && running)
            {
                await CleanupStep.RunAsync(() => _vm.Machine.PatchDriveAsync(driveId, _vm.LayerStubPath(slot), cancellationToken), _logger).ConfigureAwait(false);
            }
        }

        _vm.ReleaseLayerSlots(_layerSlots.Select(s => s.Slot));
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

        if (ErofsLayers is not null)
        {
            await DetachLayersAsync(cancellationToken).ConfigureAwait(false);
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

    [LoggerMessage(Level = LogLevel.Information, Message = "create {Id}: rootfs is the erofs snapshot's {Count} layer files {Paths}, attached read-only without a copy under an overlay whose upper layer is guest memory")]
    private static partial void LogLayers(ILogger logger, string id, int count, ImmutableArray<string> paths);

    [LoggerMessage(Level = LogLevel.Information, Message = "create {Id}: rootfs copied into an ext4 image from containerd's {Type} mount")]
    private static partial void LogCopied(ILogger logger, string id, string type);
}
