using FirecrackerContainerd.Agent.Drives;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>
/// Where the guest keeps each container's bundle: Core's VM bundle layout (<see cref="BundleDir.VMBundleDir(string)"/>,
/// <c>/container/&lt;id&gt;</c>, its rootfs the drive the host mounted at <c>/container/&lt;id&gt;/rootfs</c>) under the
/// agent's bundle root. What a Create says about the bundle and the drive is checked against that layout.
/// </summary>
internal sealed class GuestBundles(string bundleRoot, IMountedDrives drives)
{
    /// <summary>
    /// The bundle of <paramref name="request"/>'s container: the bundle it names must be that one (an empty name
    /// means the same), and the drive it names must be the one mounted at that bundle's rootfs.
    /// </summary>
    /// <exception cref="TaskException">InvalidArgument: another bundle; FailedPrecondition: the drive is not mounted at the rootfs.</exception>
    public BundleDir Of(ContainerRequest request)
    {
        BundleDir bundle = BundleDir.VMBundleDir(request.Id, bundleRoot);
        if (request.Bundle.Length > 0 && GoPath.Clean(request.Bundle) != bundle.RootPath)
        {
            throw new TaskException(TaskError.InvalidArgument,
                $"create {request.Id}: bundle {request.Bundle} is not {bundle.RootPath}, where the guest keeps the bundle of container {request.Id}");
        }

        if (request.DriveId.Length > 0)
        {
            string? mountPoint = drives.MountPointOf(request.DriveId);
            if (mountPoint is null)
            {
                throw new TaskException(TaskError.FailedPrecondition,
                    $"create {request.Id}: drive {request.DriveId} is not mounted; it must be mounted at {bundle.RootfsPath} first");
            }

            if (GoPath.Clean(mountPoint) != bundle.RootfsPath)
            {
                throw new TaskException(TaskError.FailedPrecondition,
                    $"create {request.Id}: drive {request.DriveId} is mounted at {mountPoint}, not at the bundle's rootfs {bundle.RootfsPath}");
            }
        }

        return bundle;
    }
}
