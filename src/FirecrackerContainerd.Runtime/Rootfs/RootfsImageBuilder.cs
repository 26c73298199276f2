using FirecrackerContainerd.Protos.Containerd.Types;

namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>Builds the ext4 image at <paramref name="imagePath"/> from a container's rootfs mounts (<see cref="RootfsImage.CreateAsync"/> in the shim).</summary>
/// <exception cref="InvalidRootfsException">The mounts cannot be turned into an image.</exception>
internal delegate Task RootfsImageBuilder(IReadOnlyList<Mount> mounts, string imagePath, CancellationToken cancellationToken);
