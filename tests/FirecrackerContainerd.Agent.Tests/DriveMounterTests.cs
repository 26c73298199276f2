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
}
