using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.EventsService;
using FirecrackerContainerd.Shim.Events;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Shim.Tests;

public class EventPublisherTests
{
    [Fact]
    public void Forward_carries_a_full_envelope_with_the_bare_type_name()
    {
        var when = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var exit = new TaskExit { ContainerId = "c1", Id = "c1", Pid = 42, ExitStatus = 3 };

        var request = EventPublisher.BuildForward("ns1", EventTopics.For(exit), exit, when);

        Assert.Equal(when.ToUnixTimeSeconds(), request.Envelope.Timestamp.Seconds);
        Assert.Equal("ns1", request.Envelope.Namespace);
        Assert.Equal("/tasks/exit", request.Envelope.Topic);
        Assert.Equal("containerd.events.TaskExit", request.Envelope.Event.TypeUrl);
        Assert.Equal(exit, TaskExit.Parser.ParseFrom(request.Envelope.Event.Value));
    }

    [Theory]
    [InlineData("tasks/exit")]
    [InlineData("/")]
    [InlineData("/tasks//exit")]
    [InlineData("/tasks/exit/")]
    [InlineData("/tasks/ex it")]
    public void Topics_containerd_would_reject_are_refused_before_sending(string topic)
    {
        Assert.Throws<ArgumentException>(() => EventPublisher.BuildForward("ns", topic, new TaskOOM(), DateTimeOffset.UtcNow));
    }

    [Fact]
    public void Every_task_event_has_its_containerd_topic()
    {
        Assert.Equal("/tasks/create", EventTopics.For(new TaskCreate()));
        Assert.Equal("/tasks/start", EventTopics.For(new TaskStart()));
        Assert.Equal("/tasks/delete", EventTopics.For(new TaskDelete()));
        Assert.Equal("/tasks/oom", EventTopics.For(new TaskOOM()));
        Assert.Equal("/tasks/exec-added", EventTopics.For(new TaskExecAdded()));
        Assert.Equal("/tasks/exec-started", EventTopics.For(new TaskExecStarted()));
        Assert.Equal("/tasks/paused", EventTopics.For(new TaskPaused()));
        Assert.Equal("/tasks/resumed", EventTopics.For(new TaskResumed()));
        Assert.Equal("/tasks/checkpointed", EventTopics.For(new TaskCheckpointed()));
    }

    [Theory]
    [InlineData("/run/c.sock.ttrpc", "/run/c.sock.ttrpc")]
    [InlineData("unix:///run/c.sock.ttrpc", "/run/c.sock.ttrpc")]
    [InlineData(null, "/var/lib/x/c.sock.ttrpc")]
    public void Events_socket_comes_from_TTRPC_ADDRESS_else_the_grpc_address_plus_ttrpc(string? environment, string expected)
    {
        Assert.Equal(expected, EventPublisher.ResolveSocketPath("/var/lib/x/c.sock", _ => environment));
    }

    [Fact]
    public async Task Publish_sends_Forward_with_the_namespace_metadata()
    {
        var received = new TaskCompletionSource<(ForwardRequest Request, string? Namespace)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var services = new TtrpcServiceRegistry().AddUnary(ServiceNames.Events, "Forward", ForwardRequest.Parser, (request, call) =>
        {
            received.TrySetResult((request, call.Metadata.GetFirst(EventPublisher.NamespaceMetadataKey)));
            return Task.FromResult(new Empty());
        });
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "events.sock");
        using var listener = UnixSocketTransport.Listen(path);
        await using var server = new TtrpcServer(services);
        _ = server.ServeAsync(listener);
        await using var publisher = new EventPublisher(path, "ns1");

        await publisher.PublishAsync("/tasks/start", new TaskStart { ContainerId = "c1", Pid = 7 }, CancellationToken.None);
        var (request, ns) = await received.Task;

        Assert.Equal("ns1", ns);
        Assert.Equal("/tasks/start", request.Envelope.Topic);
        Assert.Equal("containerd.events.TaskStart", request.Envelope.Event.TypeUrl);
        Assert.NotEqual(0, request.Envelope.Timestamp.Seconds);
    }

    [Fact]
    public async Task Publish_gives_up_after_retries_when_nobody_listens()
    {
        using var dir = new TempDir();
        await using var publisher = new EventPublisher(Path.Combine(dir.Path, "absent.sock"), "ns1", retryPause: TimeSpan.FromMilliseconds(1));

        await Assert.ThrowsAsync<IOException>(() => publisher.PublishAsync("/tasks/oom", new TaskOOM(), CancellationToken.None));
    }

    [Fact]
    public async Task Publish_surfaces_a_refusal_from_containerd()
    {
        var services = new TtrpcServiceRegistry().AddUnary(ServiceNames.Events, "Forward", ForwardRequest.Parser,
            (_, _) => Task.FromException<Empty>(new TtrpcException(StatusCode.InvalidArgument, "bad envelope")));
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "events.sock");
        using var listener = UnixSocketTransport.Listen(path);
        await using var server = new TtrpcServer(services);
        _ = server.ServeAsync(listener);
        await using var publisher = new EventPublisher(path, "ns1");

        var e = await Assert.ThrowsAsync<TtrpcException>(() => publisher.PublishAsync("/tasks/oom", new TaskOOM(), CancellationToken.None));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }
}
