using System.Diagnostics;
using System.Text;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.EventsService;
using FirecrackerContainerd.Shim.Events;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>Our ttrpc client and event publisher against containerd's own ttrpc server.</summary>
[Collection(PrivateContainerd.Name)]
public class ContainerdTtrpcTests(ContainerdFixture containerd)
{
    private const string Namespace = "fcevents";

    [Fact]
    public async Task Forward_to_containerds_events_service_succeeds()
    {
        await using var client = await TtrpcClient.ConnectUnixAsync(containerd.TtrpcAddress, CancellationToken.None);
        var request = EventPublisher.BuildForward(Namespace, "/tasks/oom", new TaskOOM { ContainerId = "interop1" }, DateTimeOffset.UtcNow);

        var answer = await client.CallAsync(ServiceNames.Events, "Forward", request, Empty.Parser,
            new TtrpcCallOptions { Timeout = TimeSpan.FromSeconds(5) });

        Assert.Equal(new Empty(), answer);
    }

    [Fact]
    public async Task Hundreds_of_concurrent_Forwards_on_one_connection_all_succeed()
    {
        await using var client = await TtrpcClient.ConnectUnixAsync(containerd.TtrpcAddress, CancellationToken.None);

        // containerd 1.7+ runs a ttrpc 1.2 server, which drops a connection whose stream ids go backwards.
        await Task.WhenAll(Enumerable.Range(0, 300).Select(i => Task.Run(() => client.CallAsync(ServiceNames.Events, "Forward",
            EventPublisher.BuildForward(Namespace, "/tasks/oom", new TaskOOM { ContainerId = "burst" + i }, DateTimeOffset.UtcNow),
            Empty.Parser, new TtrpcCallOptions { Timeout = TimeSpan.FromSeconds(30) }))));
    }

    [Fact]
    public async Task Unknown_service_on_containerd_answers_code_12_service_foo()
    {
        await using var client = await TtrpcClient.ConnectUnixAsync(containerd.TtrpcAddress, CancellationToken.None);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync("foo", "Bar", ReadOnlyMemory<byte>.Empty));

        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
        Assert.Equal("service foo", e.Message);
    }

    [Fact]
    public async Task Unknown_method_on_containerd_answers_code_12_method_name()
    {
        await using var client = await TtrpcClient.ConnectUnixAsync(containerd.TtrpcAddress, CancellationToken.None);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(ServiceNames.Events, "Publish", ReadOnlyMemory<byte>.Empty));

        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
        Assert.Equal("method Publish", e.Message);
    }

    [Fact]
    public async Task Forward_with_an_invalid_namespace_is_refused_by_containerd()
    {
        await using var client = await TtrpcClient.ConnectUnixAsync(containerd.TtrpcAddress, CancellationToken.None);
        var request = EventPublisher.BuildForward("bad/ns", "/tasks/oom", new TaskOOM { ContainerId = "x" }, DateTimeOffset.UtcNow);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(ServiceNames.Events, "Forward", request, Empty.Parser));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Fact]
    public async Task Event_published_through_our_publisher_shows_up_in_ctr_events()
    {
        string containerId = "evt" + Environment.ProcessId;
        var info = new ProcessStartInfo(ContainerdFixture.CtrBinary)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in new[] { "--address", containerd.Address, "events" })
        {
            info.ArgumentList.Add(arg);
        }

        using var events = Process.Start(info)!;
        var seen = new StringBuilder();
        var seenLock = new Lock();
        events.OutputDataReceived += (_, e) =>
        {
            lock (seenLock)
            {
                seen.AppendLine(e.Data);
            }
        };
        events.BeginOutputReadLine();
        events.BeginErrorReadLine();
        string Seen()
        {
            lock (seenLock)
            {
                return seen.ToString();
            }
        }

        try
        {
            await using var publisher = new EventPublisher(containerd.TtrpcAddress, Namespace);
            // ctr events subscribes asynchronously: publish until one copy arrives.
            bool arrived = false;
            for (int attempt = 0; attempt < 20 && !arrived; attempt++)
            {
                await publisher.PublishAsync("/tasks/exit",
                    new TaskExit { ContainerId = containerId, Id = containerId, Pid = 4242, ExitStatus = 7, ExitedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) },
                    CancellationToken.None);
                arrived = await Eventually.HoldsAsync(() => Seen().Contains(containerId, StringComparison.Ordinal), TimeSpan.FromSeconds(1));
            }

            Assert.True(arrived, $"ctr events never printed the event; it printed:\n{Seen()}");
            string line = Seen().Split('\n').First(l => l.Contains(containerId, StringComparison.Ordinal));
            Assert.Contains(Namespace, line);
            Assert.Contains("/tasks/exit", line);
            Assert.Contains("\"exit_status\":7", line);
        }
        finally
        {
            events.Kill();
            await events.WaitForExitAsync();
        }
    }
}
