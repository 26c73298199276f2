using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>The agent's MountDrive refuses what the host sends before it touches a device or the file system.</summary>
public sealed class DriveMounterTests : IAsyncLifetime, IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(90));
    private AgentProcess _agent = null!;

    public async Task InitializeAsync() => _agent = await AgentProcess.StartAsync(_timeout.Token);

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    public void Dispose() => _timeout.Dispose();

    [Theory]
    [InlineData("relative/dir", "ext4", "noatime", "destination")]
    [InlineData("/mnt/../etc", "ext4", "noatime", "destination")]
    [InlineData("/mnt/da\nta", "ext4", "noatime", "destination")]
    [InlineData("/mnt/data", "ext4 x", "noatime", "file system type")]
    [InlineData("/mnt/data", "EXT4", "noatime", "file system type")]
    [InlineData("/mnt/data", "ext4", "ro,exec", "mount option")]
    [InlineData("/mnt/data", "ext4", "data=ordered\n", "mount option")]
    public async Task MountDrive_refuses_a_bad_destination_type_or_option(string destination, string type, string option, string expected)
    {
        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => _agent.Client.CallAsync("DriveMounter", "MountDrive",
            new MountDriveRequest { DriveID = "drivemount0", DestinationPath = destination, FilesytemType = type, Options = { "ro", option } },
            Empty.Parser, cancellationToken: _timeout.Token));

        Assert.True(e.StatusCode == StatusCode.InvalidArgument, $"{e.StatusCode}: {e.Message}");
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists("/mnt/data"), "the agent created the mount point of a refused request");
    }

    [Fact]
    public async Task MountDrive_of_a_drive_that_is_no_stub_drive_is_NotFound()
    {
        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => _agent.Client.CallAsync("DriveMounter", "MountDrive",
            new MountDriveRequest { DriveID = "drivemount7", DestinationPath = Path.Combine(_agent.Root, "mnt"), FilesytemType = "ext4" },
            Empty.Parser, cancellationToken: _timeout.Token));

        Assert.True(e.StatusCode == StatusCode.NotFound, $"{e.StatusCode}: {e.Message}");
        Assert.False(Directory.Exists(Path.Combine(_agent.Root, "mnt")));
    }

    [Fact]
    public async Task MountOverlay_over_a_drive_that_is_not_mounted_is_refused_and_mounts_nothing()
    {
        string destination = Path.Combine(_agent.Root, "container", "c1", "rootfs");

        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => _agent.Client.CallAsync("DriveMounter", "MountOverlay",
            new MountOverlayRequest { DestinationPath = destination, LowerDriveIDs = { "layer0" }, UpperSizeMib = 16 },
            Empty.Parser, cancellationToken: _timeout.Token));

        Assert.True(e.StatusCode == StatusCode.FailedPrecondition, $"{e.StatusCode}: {e.Message}");
        Assert.Contains("drive layer0 is not mounted", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(destination + ".upper"), "the agent made the upper layer of a refused overlay");
    }

    [Theory]
    [InlineData("relative/rootfs", 1)]
    [InlineData("/container/../etc", 1)]
    [InlineData("/container/c1/rootfs", 0)]
    public async Task MountOverlay_refuses_a_bad_destination_or_no_lower_drive(string destination, int lowers)
    {
        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => _agent.Client.CallAsync("DriveMounter", "MountOverlay",
            new MountOverlayRequest { DestinationPath = destination, LowerDriveIDs = { Enumerable.Repeat("layer0", lowers) } },
            Empty.Parser, cancellationToken: _timeout.Token));

        Assert.True(e.StatusCode == StatusCode.InvalidArgument, $"{e.StatusCode}: {e.Message}");
        Assert.Contains($"mount overlay {destination}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnmountOverlay_of_no_overlay_is_NotFound()
    {
        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => _agent.Client.CallAsync("DriveMounter", "UnmountOverlay",
            new UnmountOverlayRequest { DestinationPath = "/container/c1/rootfs" }, Empty.Parser, cancellationToken: _timeout.Token));

        Assert.True(e.StatusCode == StatusCode.NotFound, $"{e.StatusCode}: {e.Message}");
    }
}
