using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime;
using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Events;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Shim.Tests;

public sealed class VmPendingTaskServiceTests : IAsyncLifetime, IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ShimLifetime _lifetime = new();
    private System.Net.Sockets.Socket? _listener;
    private TtrpcServer? _server;
    private TtrpcClient? _client;

    public async Task InitializeAsync()
    {
        var args = new ShimArguments("ns1", "/x/c.sock", "/usr/bin/containerd", "t1", "", "unix:///x", false, ShimVerb.Serve);
        var context = new ShimDaemonContext(args, _dir.Path, "unix:///x", new NoEvents(), _lifetime, NullLogger.Instance);
        var registry = new TtrpcServiceRegistry().AddTaskService(new FirecrackerShimRuntime().CreateTaskService(context));
        string path = Path.Combine(_dir.Path, "task.sock");
        _listener = UnixSocketTransport.Listen(path);
        _server = new TtrpcServer(registry);
        _ = _server.ServeAsync(_listener);
        _client = await TtrpcClient.ConnectUnixAsync(path, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _client!.DisposeAsync();
        await _server!.DisposeAsync();
        _listener!.Dispose();
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Create_is_refused_with_FailedPrecondition_and_says_why()
    {
        var e = await Assert.ThrowsAsync<TtrpcException>(() => Call("Create", new CreateTaskRequest { Id = "t1" }, CreateTaskResponse.Parser));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.StartsWith("the microVM runtime is not available yet: ", e.Message);
        Assert.EndsWith("\"t1\"", e.Message);
    }

    [Fact]
    public async Task Calls_naming_a_task_answer_NotFound()
    {
        var state = await Assert.ThrowsAsync<TtrpcException>(() => Call("State", new StateRequest { Id = "t1" }, StateResponse.Parser));
        var kill = await Assert.ThrowsAsync<TtrpcException>(() => Call("Kill", new KillRequest { Id = "t1", Signal = 9 }, Empty.Parser));
        var wait = await Assert.ThrowsAsync<TtrpcException>(() => Call("Wait", new WaitRequest { Id = "t1", ExecId = "e1" }, WaitResponse.Parser));
        var delete = await Assert.ThrowsAsync<TtrpcException>(() => Call("Delete", new DeleteRequest { Id = "t1" }, DeleteResponse.Parser));

        Assert.All(new[] { state, kill, wait, delete }, e => Assert.Equal(StatusCode.NotFound, e.StatusCode));
        Assert.Equal("exec e1 of task t1 not found: no task was ever created by this shim", wait.Message);
    }

    [Fact]
    public async Task Connect_reports_the_shim_pid()
    {
        var answer = await Call("Connect", new ConnectRequest { Id = "t1" }, ConnectResponse.Parser);

        Assert.Equal((uint)Environment.ProcessId, answer.ShimPid);
    }

    [Fact]
    public async Task Shutdown_asks_the_daemon_to_exit()
    {
        await Call("Shutdown", new ShutdownRequest { Id = "t1" }, Empty.Parser);

        Assert.Equal("Shutdown requested for t1", await _lifetime.ExitRequested);
    }

    private Task<T> Call<T>(string method, IMessage request, MessageParser<T> parser)
        where T : IMessage<T> =>
        _client!.CallAsync(ServiceNames.TaskV2, method, request, parser);

    private sealed class NoEvents : IEventPublisher
    {
        public Task PublishAsync(string topic, IMessage taskEvent, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
