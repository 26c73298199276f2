using System.IO.Pipes;
using System.Net.Sockets;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime;
using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Ttrpc.Transport;

namespace FirecrackerContainerd.Shim.Tests;

public class ShimLifecycleTests
{
    private static ShimArguments DeleteArguments(string bundle) =>
        new("ns1", "/tmp/does-not-exist/c.sock", "/usr/bin/containerd", "task1", bundle, "", false, ShimVerb.Delete);

    [Fact]
    public async Task Delete_answers_like_runc_and_removes_the_address_file_every_time()
    {
        using var bundle = new TempDir();
        ShimAddress.Write(Path.Combine(bundle.Path, "address"), "unix:///run/containerd/s/x");

        var first = await ShimProgram.DeleteAsync(DeleteArguments(bundle.Path), new FirecrackerShimRuntime(), CancellationToken.None);
        var second = await ShimProgram.DeleteAsync(DeleteArguments(bundle.Path), new FirecrackerShimRuntime(), CancellationToken.None);

        Assert.Equal(137u, first.ExitStatus);
        Assert.NotEqual(0, first.ExitedAt.Seconds);
        Assert.Equal(137u, second.ExitStatus);
        Assert.False(File.Exists(Path.Combine(bundle.Path, "address")));
    }

    [Fact]
    public void Delete_response_bytes_decode_as_containerd_expects()
    {
        var response = ShimProgram.KilledNow();

        var decoded = DeleteResponse.Parser.ParseFrom(Google.Protobuf.MessageExtensions.ToByteArray(response));

        Assert.Equal(0u, decoded.Pid);
        Assert.Equal(137u, decoded.ExitStatus);
        Assert.Equal(response.ExitedAt, decoded.ExitedAt);
    }

    [Fact]
    public async Task Delete_refuses_an_invalid_namespace()
    {
        using var bundle = new TempDir();
        var args = DeleteArguments(bundle.Path) with { Namespace = "../etc" };

        await Assert.ThrowsAsync<InvalidIdentifierException>(() =>
            ShimProgram.DeleteAsync(args, new FirecrackerShimRuntime(), CancellationToken.None));
    }

    [Fact]
    public async Task Bind_replaces_a_stale_socket_nobody_answers_on()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "shim.sock");
        using (var dead = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            // .NET unlinks the path it bound on dispose; moving the file away first leaves a stale socket behind.
            dead.Bind(new UnixDomainSocketEndPoint(path + ".bound"));
            File.Move(path + ".bound", path);
        }

        Assert.True(File.Exists(path));
        using var listener = await ShimSocket.BindAsync(path, CancellationToken.None);
        using var client = await UnixSocketTransport.ConnectAsync(path, CancellationToken.None);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public async Task Bind_refuses_a_socket_a_live_shim_serves()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "shim.sock");
        using var live = UnixSocketTransport.Listen(path);

        var e = await Assert.ThrowsAsync<IOException>(() => ShimSocket.BindAsync(path, CancellationToken.None));

        Assert.Contains("already served by a running shim", e.Message);
    }

    [Theory]
    [InlineData("1234 (containerd-shim) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3", false)]
    [InlineData("1234 (containerd-shim) R 1 1234 1234 0 -1 4194564 100 0 0 0 5 3", true)]
    [InlineData("1234 (containerd-shim) Z 1 1234 1234 0 -1 4194560 100 0 0 0 5 3", true)]
    [InlineData("1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3", false)]
    public void A_process_is_exiting_when_its_stat_shows_a_zombie_or_PF_EXITING(string stat, bool exiting) =>
        Assert.Equal(exiting, ShimSocket.IsExiting(stat));

    [Fact]
    public void This_process_is_not_exiting_and_a_pid_that_does_not_exist_is()
    {
        Assert.False(ShimSocket.IsExiting(Environment.ProcessId));
        Assert.True(ShimSocket.IsExiting(int.MaxValue));
        Assert.Throws<FormatException>(() => ShimSocket.IsExiting("garbage"));
    }

    [Fact]
    public async Task A_socket_this_live_process_serves_answers_and_one_nobody_serves_does_not()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "shim.sock");
        using (var live = UnixSocketTransport.Listen(path))
        {
            Assert.True(await ShimSocket.AnswersAsync(path, CancellationToken.None));
        }

        Assert.False(await ShimSocket.AnswersAsync(path, CancellationToken.None));
    }

    [Fact]
    public async Task Writing_to_a_pipe_without_reader_is_an_error_not_a_SIGPIPE_death()
    {
        using var server = new AnonymousPipeServerStream(PipeDirection.Out);
        server.DisposeLocalCopyOfClientHandle();

        await Assert.ThrowsAsync<IOException>(async () =>
        {
            for (int i = 0; i < 100; i++)
            {
                await server.WriteAsync(new byte[4096]);
            }
        });
    }
}
