using FirecrackerContainerd.Control.Configuration;
using FirecrackerContainerd.Control.Shims;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>The daemon's socket and its real launcher, with a script standing in for the shim executable.</summary>
public sealed class ControlDaemonTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fcdaemon-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ControlOptions Options => new()
    {
        SocketPath = Path.Combine(_dir, "control.sock"),
        GrpcSocketPath = Path.Combine(_dir, "control-grpc.sock"),
        ContainerdAddress = Path.Combine(_dir, "containerd.sock"),
        StateDir = Path.Combine(_dir, "state"),
        ShimBinary = Path.Combine(_dir, "fake-shim"),
    };

    [Fact]
    public async Task The_socket_is_0600_a_second_daemon_on_it_is_refused_and_stopping_removes_it()
    {
        var launcher = new ShimBinaryLauncher(Options.ShimBinary, Options.ContainerdAddress, Options.PublishBinary);
        await using (var daemon = await ControlDaemon.StartAsync(Options, launcher, NullLogger.Instance, CancellationToken.None))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Options.SocketPath));
            await Assert.ThrowsAsync<IOException>(() => ControlDaemon.StartAsync(Options, launcher, NullLogger.Instance, CancellationToken.None));
        }

        Assert.False(File.Exists(Options.SocketPath));
    }

    [Fact]
    public async Task A_shim_that_fails_to_start_makes_CreateVM_fail_naming_the_vm_and_leaves_no_bundle()
    {
        File.WriteAllText(Options.ShimBinary, "#!/bin/sh\necho \"cannot start: $*\" >&2\nexit 1\n");
        File.SetUnixFileMode(Options.ShimBinary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var launcher = new ShimBinaryLauncher(Options.ShimBinary, Options.ContainerdAddress, Options.PublishBinary);
        await using var daemon = await ControlDaemon.StartAsync(Options, launcher, NullLogger.Instance, CancellationToken.None);
        await using var client = await TtrpcClient.ConnectUnixAsync(Options.SocketPath, CancellationToken.None);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(ServiceNames.Firecracker, "CreateVM",
            new CreateVMRequest { VMID = "vm1" }, CreateVMResponse.Parser));

        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.Contains("shim start for vm vm1 in namespace default", e.Message, StringComparison.Ordinal);
        Assert.Contains("cannot start", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(Options.StateDir, "default", "vm1")));
    }
}
