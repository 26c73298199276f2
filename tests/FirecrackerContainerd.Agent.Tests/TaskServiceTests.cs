using System.Net.Sockets;
using System.Text;
using FirecrackerContainerd.Protos.Containerd.TaskTypes;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>The agent's task service driven over ttrpc, with real containers run by runc on this host.</summary>
public sealed class TaskServiceTests : IAsyncLifetime, IDisposable
{
    private const string Task = "containerd.task.v2.Task";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(90));
    private AgentProcess _agent = null!;
    private uint _nextPort = 11000;

    public async Task InitializeAsync() => _agent = await AgentProcess.StartAsync(_timeout.Token);

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task Runs_a_container_to_exit_with_its_output_and_exit_code()
    {
        byte[] spec = _agent.PrepareBundle("c1", "sh", "-c", "echo hello from the container; echo to-stderr >&2; exit 3");
        var (ports, _) = await CreateAsync("c1", spec);
        Task<string> stdout = ReadAllAsync(ports.Stdout);
        Task<string> stderr = ReadAllAsync(ports.Stderr);
        await CallAsync<StartResponse>("Start", new StartRequest { Id = "c1" });

        WaitResponse exit = await CallAsync<WaitResponse>("Wait", new WaitRequest { Id = "c1" });
        Assert.Equal(3u, exit.ExitStatus);
        Assert.Equal("hello from the container\n", await stdout);
        Assert.Equal("to-stderr\n", await stderr);

        StateResponse state = await CallAsync<StateResponse>("State", new StateRequest { Id = "c1" });
        Assert.Equal(Status.Stopped, state.Status);
        DeleteResponse deleted = await CallAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "c1" });
        Assert.Equal(3u, deleted.ExitStatus);

        string[] topics = await EventTopicsAsync(4);
        Assert.Equal(["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], topics);
        var e = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<StateResponse>("State", new StateRequest { Id = "c1" }));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
    }

    [Fact]
    public async Task Pipes_stdin_through_and_ends_it_on_close()
    {
        byte[] spec = _agent.PrepareBundle("c2", "sh", "-c", "cat; echo done");
        var (ports, _) = await CreateAsync("c2", spec);
        using Socket stdin = await ConnectAsync(ports.Stdin);
        Task<string> stdout = ReadAllAsync(ports.Stdout);
        Task<string> stderr = ReadAllAsync(ports.Stderr);
        await CallAsync<StartResponse>("Start", new StartRequest { Id = "c2" });

        await stdin.SendAsync("ping\n"u8.ToArray(), _timeout.Token);
        stdin.Shutdown(SocketShutdown.Send);
        Assert.Equal("ping\ndone\n", await stdout);
        Assert.Equal(string.Empty, await stderr);
        Assert.Equal(0u, (await CallAsync<WaitResponse>("Wait", new WaitRequest { Id = "c2" })).ExitStatus);
        await CallAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "c2" });
    }

    [Fact]
    public async Task Execs_into_a_running_container_and_kills_it()
    {
        byte[] spec = _agent.PrepareBundle("c3", "sleep", "60");
        var (initPorts, _) = await CreateAsync("c3", spec);

        // Connected like the shim does, so the exit is not held back waiting for the host.
        Task<string> initStdout = ReadAllAsync(initPorts.Stdout);
        Task<string> initStderr = ReadAllAsync(initPorts.Stderr);
        StartResponse started = await CallAsync<StartResponse>("Start", new StartRequest { Id = "c3" });
        Assert.True(started.Pid > 0);

        uint execOut = NextPorts().Stdout;
        var extra = new ExtraData
        {
            JsonSpec = ByteString.CopyFromUtf8(AgentProcess.ProcessJson("sh", "-c", "echo from exec; exit 7").ToJsonString()),
            StdoutPort = execOut,
        };
        await CallAsync<Empty>("Exec", new ExecProcessRequest { Id = "c3", ExecId = "e1", Spec = Any.Pack(extra) });
        Task<string> output = ReadAllAsync(execOut);
        StartResponse execStarted = await CallAsync<StartResponse>("Start", new StartRequest { Id = "c3", ExecId = "e1" });
        Assert.NotEqual(started.Pid, execStarted.Pid);
        Assert.Equal(7u, (await CallAsync<WaitResponse>("Wait", new WaitRequest { Id = "c3", ExecId = "e1" })).ExitStatus);
        Assert.Equal("from exec\n", await output);
        await CallAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "c3", ExecId = "e1" });

        var running = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "c3" }));
        Assert.Equal(StatusCode.FailedPrecondition, running.StatusCode);

        await CallAsync<Empty>("Kill", new KillRequest { Id = "c3", Signal = 9 });
        Assert.Equal(137u, (await CallAsync<WaitResponse>("Wait", new WaitRequest { Id = "c3" })).ExitStatus);
        Assert.Equal(string.Empty, await initStdout + await initStderr);
        await CallAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "c3" });
    }

    [Fact]
    public async Task Refuses_bad_requests_with_the_right_codes()
    {
        byte[] spec = _agent.PrepareBundle("c4", "true");
        await CreateAsync("c4", spec);

        var duplicate = await Assert.ThrowsAsync<TtrpcException>(() => CreateAsync("c4", spec));
        Assert.Equal(StatusCode.AlreadyExists, duplicate.StatusCode);

        var badId = await Assert.ThrowsAsync<TtrpcException>(() => CreateAsync("../escape", spec));
        Assert.Equal(StatusCode.InvalidArgument, badId.StatusCode);

        var noOptions = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<CreateTaskResponse>("Create", new CreateTaskRequest { Id = "c5" }));
        Assert.Equal(StatusCode.InvalidArgument, noOptions.StatusCode);

        var badSpec = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<CreateTaskResponse>("Create", new CreateTaskRequest
        {
            Id = "c6",
            Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFromUtf8("{not json") }),
        }));
        Assert.Equal(StatusCode.InvalidArgument, badSpec.StatusCode);

        var unknown = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<WaitResponse>("Wait", new WaitRequest { Id = "nope" }));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        var badSignal = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<Empty>("Kill", new KillRequest { Id = "c4", Signal = 99 }));
        Assert.Equal(StatusCode.InvalidArgument, badSignal.StatusCode);

        var checkpoint = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<Empty>("Checkpoint", new CheckpointTaskRequest { Id = "c4" }));
        Assert.Equal(StatusCode.Unimplemented, checkpoint.StatusCode);
    }

    [Fact]
    public async Task Output_written_before_the_host_connects_is_kept()
    {
        byte[] spec = _agent.PrepareBundle("c7", "sh", "-c", "head -c 200000 /dev/zero | wc -c; echo end");
        var (ports, _) = await CreateAsync("c7", spec);
        Task<string> stderr = ReadAllAsync(ports.Stderr);
        await CallAsync<StartResponse>("Start", new StartRequest { Id = "c7" });
        await System.Threading.Tasks.Task.Delay(500);
        Assert.Equal("200000\nend\n", await ReadAllAsync(ports.Stdout));
        Assert.Equal(0u, (await CallAsync<WaitResponse>("Wait", new WaitRequest { Id = "c7" })).ExitStatus);
        Assert.Equal(string.Empty, await stderr);
        await CallAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "c7" });
    }

    [Fact]
    public async Task Answers_under_containerd_2s_task_api_name_as_under_the_v2_name()
    {
        byte[] spec = _agent.PrepareBundle("c8", "true");
        var (_, created) = await CreateAsync("c8", spec);

        StateResponse state = await _agent.Client.CallAsync(
            "containerd.task.v3.Task", "State", new StateRequest { Id = "c8" }, StateResponse.Parser, cancellationToken: _timeout.Token);
        Assert.Equal(created.Pid, state.Pid);
        Assert.Equal(Status.Created, state.Status);
    }

    [Fact]
    public async Task Runs_from_the_bundle_the_host_names_and_refuses_another_one()
    {
        byte[] spec = _agent.PrepareBundle("c9", "true");
        string bundle = Path.Combine(_agent.BundleRoot, "c9");

        var elsewhere = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<CreateTaskResponse>("Create", new CreateTaskRequest
        {
            Id = "c9",
            Bundle = "/container/c9",
            Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFrom(spec) }),
        }));
        Assert.Equal(StatusCode.InvalidArgument, elsewhere.StatusCode);
        Assert.Contains($"is not {bundle}", elsewhere.Message, StringComparison.Ordinal);

        await CallAsync<CreateTaskResponse>("Create", new CreateTaskRequest { Id = "c9", Bundle = bundle, Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFrom(spec) }) });
        Assert.Equal(bundle, (await CallAsync<StateResponse>("State", new StateRequest { Id = "c9" })).Bundle);
        Envelope created = await _agent.Client.CallAsync("aws.firecracker.containerd.eventbridge.getter", "GetEvent", new Empty(), Envelope.Parser, cancellationToken: _timeout.Token);
        Assert.Equal(bundle, TaskCreate.Parser.ParseFrom(created.Event.Value).Bundle);
    }

    [Fact]
    public async Task Refuses_a_create_whose_drive_is_not_mounted_at_its_rootfs()
    {
        byte[] spec = _agent.PrepareBundle("c10", "true");

        var e = await Assert.ThrowsAsync<TtrpcException>(() => CallAsync<CreateTaskResponse>("Create", new CreateTaskRequest
        {
            Id = "c10",
            Bundle = Path.Combine(_agent.BundleRoot, "c10"),
            Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFrom(spec), DriveID = "stub0" }),
        }));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal($"create c10: drive stub0 is not mounted; it must be mounted at {Path.Combine(_agent.BundleRoot, "c10", "rootfs")} first", e.Message);
    }

    private (uint Stdin, uint Stdout, uint Stderr) NextPorts()
    {
        uint first = _nextPort;
        _nextPort += 3;
        return (first, first + 1, first + 2);
    }

    private async Task<((uint Stdin, uint Stdout, uint Stderr) Ports, CreateTaskResponse Response)> CreateAsync(string id, byte[] spec)
    {
        var ports = NextPorts();
        var extra = new ExtraData { JsonSpec = ByteString.CopyFrom(spec), StdinPort = ports.Stdin, StdoutPort = ports.Stdout, StderrPort = ports.Stderr };
        var response = await CallAsync<CreateTaskResponse>("Create", new CreateTaskRequest { Id = id, Bundle = Path.Combine(_agent.BundleRoot, id), Options = Any.Pack(extra) });
        Assert.True(response.Pid > 0);
        return (ports, response);
    }

    private async Task<T> CallAsync<T>(string method, IMessage request)
        where T : IMessage<T>, new()
    {
        return await _agent.Client.CallAsync(Task, method, request, new MessageParser<T>(() => new T()), cancellationToken: _timeout.Token);
    }

    private async Task<string[]> EventTopicsAsync(int count)
    {
        var topics = new string[count];
        for (int i = 0; i < count; i++)
        {
            Envelope envelope = await _agent.Client.CallAsync("aws.firecracker.containerd.eventbridge.getter", "GetEvent", new Empty(), Envelope.Parser, cancellationToken: _timeout.Token);
            topics[i] = envelope.Topic;
            if (envelope.Topic == "/tasks/exit")
            {
                Assert.Equal("containerd.events.TaskExit", envelope.Event.TypeUrl);
                Assert.Equal("c1", TaskExit.Parser.ParseFrom(envelope.Event.Value).ContainerId);
            }
        }

        return topics;
    }

    private async Task<Socket> ConnectAsync(uint port)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(Path.Combine(_agent.StdioDirectory, $"{port}.sock")), _timeout.Token);
        return socket;
    }

    private async Task<string> ReadAllAsync(uint port)
    {
        using Socket socket = await ConnectAsync(port);
        using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync(_timeout.Token);
    }
}
