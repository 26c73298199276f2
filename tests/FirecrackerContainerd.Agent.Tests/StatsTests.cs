using System.Net.Sockets;
using FirecrackerContainerd.Protos.Cgroups.V2;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>Stats of a container run by runc on this host, read from its cgroup v2 directory.</summary>
public sealed class StatsTests : IAsyncLifetime, IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(90));
    private AgentProcess _agent = null!;

    public async Task InitializeAsync() => _agent = await AgentProcess.StartAsync(_timeout.Token);

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task Stats_of_a_running_container_are_containerd_cgroup_v2_metrics()
    {
        // The loop burns CPU the cgroup accounts before the container says it is ready.
        byte[] spec = _agent.PrepareBundle("s1", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo ready; sleep 60");
        CreateTaskResponse created = await _agent.CallTaskAsync<CreateTaskResponse>("Create", new CreateTaskRequest
        {
            Id = "s1",
            Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFrom(spec), StdoutPort = 13001 }),
        }, _timeout.Token);
        using Socket stdout = await _agent.ConnectStdioAsync(13001, _timeout.Token);
        await _agent.CallTaskAsync<StartResponse>("Start", new StartRequest { Id = "s1" }, _timeout.Token);
        byte[] ready = new byte[6];
        for (int read = 0, n; read < ready.Length; read += n)
        {
            n = await stdout.ReceiveAsync(ready.AsMemory(read), SocketFlags.None, _timeout.Token);
            Assert.True(n > 0, "the container ended before it said it was ready");
        }

        StatsResponse stats = await _agent.CallTaskAsync<StatsResponse>("Stats", new StatsRequest { Id = "s1" }, _timeout.Token);

        Assert.Equal("io.containerd.cgroups.v2.Metrics", stats.Stats.TypeUrl);
        Metrics metrics = Metrics.Parser.ParseFrom(stats.Stats.Value);
        Assert.True(metrics.Cpu.UsageUsec > 0, $"the container's cgroup accounts no CPU time: {metrics}");

        // Where the host's cgroup v2 has the pids controller (in the VM it has), the container's processes count.
        string cgroupDir = ContainerCgroup((int)created.Pid);
        if (File.Exists(Path.Join(cgroupDir, "pids.current")))
        {
            Assert.True(metrics.Pids.Current >= 1, $"pids.current of {cgroupDir} reported as {metrics.Pids.Current}");
        }
        else
        {
            Assert.Equal(0ul, metrics.Pids.Current);
        }

        await _agent.CallTaskAsync<Empty>("Kill", new KillRequest { Id = "s1", Signal = 9 }, _timeout.Token);
        await _agent.CallTaskAsync<WaitResponse>("Wait", new WaitRequest { Id = "s1" }, _timeout.Token);
        await _agent.CallTaskAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "s1" }, _timeout.Token);
    }

    [Fact]
    public async Task Stats_of_an_unknown_task_is_not_found()
    {
        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            _agent.CallTaskAsync<StatsResponse>("Stats", new StatsRequest { Id = "nope" }, _timeout.Token));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
    }

    private static string ContainerCgroup(int pid)
    {
        string relative = File.ReadAllLines($"/proc/{pid}/cgroup").Single(l => l.StartsWith("0::", StringComparison.Ordinal))[3..];
        string mount = File.ReadAllLines("/proc/self/mountinfo").Select(l => l.Split(' ')).First(f => f.Contains("cgroup2"))[4];
        return mount + relative;
    }
}
