using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Addressing;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>The shim executable's start and delete verbs run the way containerd runs them, without containerd.</summary>
public sealed class ShimBinaryTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("fcshim-").FullName;
    private string _shim = string.Empty;

    private string Address => Path.Combine(_dir, "containerd.sock");

    private string Bundle => Path.Combine(_dir, "bundle");

    public async Task InitializeAsync() => _shim = await NativeBinary.ShimAsync(CancellationToken.None);

    public async Task DisposeAsync()
    {
        foreach (int pid in ProcessRunner.FindProcesses("containerd-shim-aws-firecracker", Address))
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill();
                await process.WaitForExitAsync();
            }
            catch (ArgumentException)
            {
                // Exited on its own meanwhile.
            }
        }

        File.Delete(ShimSocketAddress.ToPath(ShimSocketAddress.For(Address, "ns1", "t1")));
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Start_prints_only_the_address_writes_the_address_file_and_a_second_start_reuses_the_daemon()
    {
        Directory.CreateDirectory(Bundle);
        string expected = ShimSocketAddress.For(Address, "ns1", "t1");

        var first = await ShimAsync("start");
        var second = await ShimAsync("start");

        Assert.Equal(0, first.ExitCode);
        Assert.Equal(expected, first.Stdout);
        Assert.Equal(string.Empty, first.Stderr);
        Assert.Equal(expected, second.Stdout);
        Assert.Equal(expected, await File.ReadAllTextAsync(Path.Combine(Bundle, "address")));
        string socket = ShimSocketAddress.ToPath(expected);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
        Assert.Single(ProcessRunner.FindProcesses("containerd-shim-aws-firecracker", Address));

        await using (var client = await TtrpcClient.ConnectUnixAsync(socket, CancellationToken.None))
        {
            var connect = await client.CallAsync(ServiceNames.TaskV2, "Connect", new ConnectRequest { Id = "t1" }, ConnectResponse.Parser);
            Assert.Equal(ProcessRunner.FindProcesses("containerd-shim-aws-firecracker", Address)[0], (int)connect.ShimPid);

            // containerd 2.x calls the same API by its v3 name when a shim's bootstrap parameters say version 3.
            var connectV3 = await client.CallAsync(ServiceNames.TaskV3, "Connect", new ConnectRequest { Id = "t1" }, ConnectResponse.Parser);
            Assert.Equal(connect.ShimPid, connectV3.ShimPid);
            await client.CallAsync(ServiceNames.TaskV3, "Shutdown", new ShutdownRequest { Id = "t1" }, Empty.Parser);
        }

        Assert.True(await Eventually.HoldsAsync(() => !File.Exists(socket)), "the daemon left its socket after Shutdown");
        Assert.True(await Eventually.HoldsAsync(() => ProcessRunner.FindProcesses("containerd-shim-aws-firecracker", Address).Count == 0),
            "the daemon did not exit after Shutdown");
    }

    [Fact]
    public async Task Daemon_exits_on_SIGTERM_and_removes_its_socket()
    {
        Directory.CreateDirectory(Bundle);
        var start = await ShimAsync("start");
        string socket = ShimSocketAddress.ToPath(start.Stdout);
        int daemon = Assert.Single(ProcessRunner.FindProcesses("containerd-shim-aws-firecracker", Address));

        Assert.Equal(0, Interop.Kill(daemon, Interop.SIGTERM));

        Assert.True(await Eventually.HoldsAsync(() => ProcessRunner.FindProcesses("containerd-shim-aws-firecracker", Address).Count == 0),
            "the daemon ignored SIGTERM");
        Assert.False(File.Exists(socket), "the daemon left its socket after SIGTERM");
    }

    [Fact]
    public async Task Start_replaces_a_stale_socket_left_by_a_dead_shim()
    {
        Directory.CreateDirectory(Bundle);
        string socket = ShimSocketAddress.ToPath(ShimSocketAddress.For(Address, "ns1", "t1"));
        using (var dead = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
        {
            // .NET unlinks the path it bound on dispose; moving the file away first leaves a stale socket behind.
            dead.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(socket + ".bound"));
            File.Move(socket + ".bound", socket);
        }

        var start = await ShimAsync("start");

        Assert.Equal(0, start.ExitCode);
        await using var client = await TtrpcClient.ConnectUnixAsync(socket, CancellationToken.None);
        await client.CallAsync(ServiceNames.TaskV2, "Shutdown", new ShutdownRequest { Id = "t1" }, Empty.Parser);
    }

    [Fact]
    public async Task Delete_prints_a_DeleteResponse_and_nothing_else()
    {
        Directory.CreateDirectory(Bundle);

        var result = await ShimAsync("-bundle", Bundle, "delete");

        Assert.Equal(0, result.ExitCode);
        var response = DeleteResponse.Parser.ParseFrom(result.StdoutBytes);
        Assert.Equal(137u, response.ExitStatus);
        Assert.NotEqual(0, response.ExitedAt.Seconds);
    }

    [Fact]
    public async Task Start_with_an_invalid_id_fails_and_says_why()
    {
        Directory.CreateDirectory(Bundle);

        var result = await ProcessRunner.RunAsync(_shim,
            ["-namespace", "ns1", "-address", Address, "-publish-binary", "/usr/bin/containerd", "-id", "../x", "start"], Timeout, Bundle);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("identifier \"../x\" must match", result.Output);
    }

    private Task<CommandResult> ShimAsync(params string[] tail) =>
        ProcessRunner.RunAsync(_shim,
            ["-namespace", "ns1", "-address", Address, "-publish-binary", "/usr/bin/containerd", "-id", "t1", .. tail], Timeout, Bundle,
            stdin: []);
}
