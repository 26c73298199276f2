using System.Net.Sockets;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;

namespace FirecrackerContainerd.Runtime.Tests.Vm;

/// <summary>The shim's agent client refuses answers no honest agent can give, served by a hostile agent on a real socket.</summary>
public sealed class AgentClientAnswerTests : IAsyncLifetime, IDisposable
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
    public async Task A_pid_no_process_can_have_is_refused_from_Create_and_Start(uint pid)
    {
        await using AgentClient agent = await ServeAsync(pid, exitStatus: 0);

        var create = await Assert.ThrowsAsync<TtrpcException>(() => agent.CreateAsync(new CreateTaskRequest { Id = "c1" }, _stop.Token));
        var start = await Assert.ThrowsAsync<TtrpcException>(() => agent.StartAsync(new StartRequest { Id = "c1" }, _stop.Token));

        Assert.Equal(StatusCode.Internal, create.StatusCode);
        Assert.Equal($"the agent answered Create with pid {pid}", create.Message);
        Assert.Equal($"the agent answered Start with pid {pid}", start.Message);
    }

    [Theory]
    [InlineData(42u, 256u)]
    [InlineData(4194305u, 0u)]
    public async Task A_Delete_with_an_impossible_exit_is_refused(uint pid, uint exitStatus)
    {
        await using AgentClient agent = await ServeAsync(pid, exitStatus);

        var e = await Assert.ThrowsAsync<InvalidDataException>(() => agent.DeleteAsync(new DeleteRequest { Id = "c1" }, _stop.Token));

        Assert.Equal("the agent answered Delete of c1 with an impossible exit", e.Message);
    }

    [Fact]
    public async Task An_honest_answer_is_accepted()
    {
        await using AgentClient agent = await ServeAsync(pid: 42, exitStatus: 3);

        Assert.Equal(42u, await agent.CreateAsync(new CreateTaskRequest { Id = "c1" }, _stop.Token));
        Assert.Equal(42u, await agent.StartAsync(new StartRequest { Id = "c1" }, _stop.Token));
        Assert.Equal(new DeleteResponse { Pid = 42, ExitStatus = 3 }, await agent.DeleteAsync(new DeleteRequest { Id = "c1" }, _stop.Token));
    }

    private async Task<AgentClient> ServeAsync(uint pid, uint exitStatus)
    {
        const string task = ServiceNames.TaskV2;
        var registry = new TtrpcServiceRegistry()
            .AddUnary<CreateTaskRequest, CreateTaskResponse>(task, "Create", CreateTaskRequest.Parser, (_, _) => Task.FromResult(new CreateTaskResponse { Pid = pid }))
            .AddUnary<StartRequest, StartResponse>(task, "Start", StartRequest.Parser, (_, _) => Task.FromResult(new StartResponse { Pid = pid }))
            .AddUnary<DeleteRequest, DeleteResponse>(task, "Delete", DeleteRequest.Parser, (_, _) => Task.FromResult(new DeleteResponse { Pid = pid, ExitStatus = exitStatus }));
        string path = Path.Combine(_dir, "agent.sock");
        _listener = UnixSocketTransport.Listen(path);
        _server = new TtrpcServer(registry);
        _serving = _server.ServeAsync(_listener, _stop.Token);
        return new AgentClient(new TtrpcClient(await UnixSocketTransport.ConnectAsync(path, _stop.Token)));
    }
}
