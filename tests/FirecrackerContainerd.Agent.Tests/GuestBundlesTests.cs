using FirecrackerContainerd.Agent.Drives;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Agent.Tasks;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Agent.Tests;

public sealed class GuestBundlesTests
{
    private readonly Drives _drives = new();

    [Theory]
    [InlineData("/container/c1")]
    [InlineData("/container/c1/")]
    [InlineData("")]
    public void The_bundle_the_host_names_is_the_containers_bundle_under_container(string named)
    {
        BundleDir bundle = new GuestBundles(WellKnownNames.VmBundleRoot, _drives).Of(Request(named, driveId: ""));

        Assert.Equal(BundleDir.VMBundleDir("c1"), bundle);
    }

    [Fact]
    public void Under_another_bundle_root_the_layout_is_the_same()
    {
        BundleDir bundle = new GuestBundles("/tmp/agent/bundles", _drives).Of(Request("/tmp/agent/bundles/c1", driveId: ""));

        Assert.Equal("/tmp/agent/bundles/c1/rootfs", bundle.RootfsPath);
    }

    [Theory]
    [InlineData("/container/c2")]
    [InlineData("/container/c1/../c2")]
    [InlineData("/run/containerd/io.containerd.runtime.v2.task/default/c1")]
    [InlineData("c1")]
    public void Another_bundle_is_refused_naming_both(string named)
    {
        var e = Assert.Throws<TaskException>(() => new GuestBundles(WellKnownNames.VmBundleRoot, _drives).Of(Request(named, driveId: "")));

        Assert.Equal(TaskError.InvalidArgument, e.Error);
        Assert.Equal($"create c1: bundle {named} is not /container/c1, where the guest keeps the bundle of container c1", e.Message);
    }

    [Theory]
    [InlineData("/container/c1/rootfs")]
    [InlineData("/container/c1/rootfs/")]
    public void A_drive_mounted_at_the_bundles_rootfs_is_the_containers_rootfs(string mountPoint)
    {
        _drives.Mounted["stub2"] = mountPoint;

        BundleDir bundle = new GuestBundles(WellKnownNames.VmBundleRoot, _drives).Of(Request("/container/c1", "stub2"));

        Assert.Equal("/container/c1/rootfs", bundle.RootfsPath);
    }

    [Fact]
    public void A_drive_mounted_elsewhere_is_refused_naming_both_places()
    {
        _drives.Mounted["stub2"] = "/container/c2/rootfs";

        var e = Assert.Throws<TaskException>(() => new GuestBundles(WellKnownNames.VmBundleRoot, _drives).Of(Request("/container/c1", "stub2")));

        Assert.Equal(TaskError.FailedPrecondition, e.Error);
        Assert.Equal("create c1: drive stub2 is mounted at /container/c2/rootfs, not at the bundle's rootfs /container/c1/rootfs", e.Message);
    }

    [Fact]
    public void A_drive_that_is_not_mounted_is_refused()
    {
        var e = Assert.Throws<TaskException>(() => new GuestBundles(WellKnownNames.VmBundleRoot, _drives).Of(Request("/container/c1", "stub2")));

        Assert.Equal(TaskError.FailedPrecondition, e.Error);
        Assert.Equal("create c1: drive stub2 is not mounted; it must be mounted at /container/c1/rootfs first", e.Message);
    }

    private static ContainerRequest Request(string bundle, string driveId) =>
        new("c1", bundle, driveId, "{}"u8.ToArray(), new StdioPaths(false, 0, 0, 0));

    private sealed class Drives : IMountedDrives
    {
        public Dictionary<string, string> Mounted { get; } = [];

        public string? MountPointOf(string driveId) => Mounted.GetValueOrDefault(driveId);
    }
}
