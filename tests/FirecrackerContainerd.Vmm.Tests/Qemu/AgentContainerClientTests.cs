using System.Net.Sockets;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>The host side of a container run refuses answers no honest agent can give, served by a hostile agent on a real socket.</summary>
public sealed class AgentContainerClientTests : IAsyncLifetime, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-hostile-agent-").FullName;
    private readonly CancellationTokenSource _stop = new(TimeSpan.FromSeconds(30));
    private TtrpcServer? _server;
    private Task _serving = Task.CompletedTask;
    private Socket? _listener;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        try
        {
            await _serving;
        }
        catch (OperationCanceledException)
        {
        }
    }

    // xunit calls this after DisposeAsync.
    public void Dispose()
    {
        _stop.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(4194305u)]
    public async Task A_pid_no_process_can_have_is_refused(uint pid)
    {
        await using TtrpcClient client = await ServeAsync(pid, exitStatus: 0);

        var e = await Assert.ThrowsAsync<InvalidDataException>(
            () => new AgentContainerClient(client, "/nonexistent").RunAsync("c1", ["true"], 0, _stop.Token));

        Assert.Contains($"pid {pid}", e.Message);
    }

    [Fact]
    public async Task An_exit_status_above_a_byte_is_refused()
    {
        await using TtrpcClient client = await ServeAsync(pid: 42, exitStatus: 256);

        var e = await Assert.ThrowsAsync<InvalidDataException>(
            () => new AgentContainerClient(client, "/nonexistent").RunAsync("c1", ["true"], 0, _stop.Token));

        Assert.Contains("exit status 256", e.Message);
    }

    [Fact]
    public async Task An_honest_answer_is_accepted()
    {
        await using TtrpcClient client = await ServeAsync(pid: 42, exitStatus: 3);

        ContainerRun run = await new AgentContainerClient(client, "/nonexistent").RunAsync("c1", ["true"], 0, _stop.Token);

        Assert.Equal(new ContainerRun(42, 3, string.Empty), run);
    }

    private async Task<TtrpcClient> ServeAsync(uint pid, uint exitStatus)
    {
        const string task = "containerd.task.v2.Task";
        var registry = new TtrpcServiceRegistry()
            .AddUnary<CreateTaskRequest, CreateTaskResponse>(task, "Create", CreateTaskRequest.Parser, (_, _) => Task.FromResult(new CreateTaskResponse { Pid = pid }))
            .AddUnary<StartRequest, StartResponse>(task, "Start", StartRequest.Parser, (_, _) => Task.FromResult(new StartResponse { Pid = pid }))
            .AddUnary<WaitRequest, WaitResponse>(task, "Wait", WaitRequest.Parser, (_, _) => Task.FromResult(new WaitResponse { ExitStatus = exitStatus }))
            .AddUnary<DeleteRequest, DeleteResponse>(task, "Delete", DeleteRequest.Parser, (_, _) => Task.FromResult(new DeleteResponse { Pid = pid, ExitStatus = exitStatus }));
        string path = Path.Combine(_dir, "agent.sock");
        _listener = UnixSocketTransport.Listen(path);
        _server = new TtrpcServer(registry);
        _serving = _server.ServeAsync(_listener, _stop.Token);
        return new TtrpcClient(await UnixSocketTransport.ConnectAsync(path, _stop.Token));
    }
}
