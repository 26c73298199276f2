using System.Net.Sockets;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Runtime.Tests.Vm;

/// <summary>What the shim says when the guest agent goes away under a call, or never answers because the VMM exited.</summary>
public sealed class AgentFailureMessageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fcagentclient-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_call_cut_off_by_the_agent_closing_its_connection_names_the_call_and_says_why()
    {
        await using var agent = new AgentClient(await ConnectToAgentThatHangsUpAsync(), () => Task.FromResult(" (the reason)"));

        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => agent.VersionAsync(CancellationToken.None));

        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal("Version: the connection to the VM's agent closed (the reason)", e.Message);
    }

    [Fact]
    public async Task A_call_the_shim_cuts_off_by_closing_the_connection_itself_is_not_explained()
    {
        int explained = 0;
        using var listener = Listen(out string path);
        var client = new TtrpcClient(await ConnectAsync(path));
        using Socket server = await listener.AcceptAsync();
        var agent = new AgentClient(client, () => Task.FromResult($" ({++explained})"));

        var call = agent.VersionAsync(CancellationToken.None);
        await agent.DisposeAsync();

        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => call);
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal(0, explained);
    }

    [Fact]
    public async Task The_explanation_gives_the_VMM_exit_and_the_guests_last_words_about_an_end_quoted_safely()
    {
        var exit = new VmExit("vm1", 42, 0, Killed: false, DateTimeOffset.UtcNow);
        string[] console =
        [
            "fc-init: ready uptime=1.20",
            "[   30.1] Out of memory: Killed process 230 (fc-agent) total-vm:300000kB",
            "fc-init: fc-agent exited with 137\u001b[2J",
            "reboot: Power down",
        ];

        string why = await MicroVm.ExplainAgentLossAsync(Task.FromResult(exit), () => console, TimeSpan.FromSeconds(1));

        Assert.Equal(
            " (the VMM exited with status 0; the guest console said: [   30.1] Out of memory: Killed process 230 (fc-agent) total-vm:300000kB" +
            " | fc-init: fc-agent exited with 137?[2J)",
            why);
    }

    [Fact]
    public async Task The_explanation_says_the_VMM_still_runs_when_it_does_not_exit_in_time()
    {
        var running = new TaskCompletionSource<VmExit>();

        string why = await MicroVm.ExplainAgentLossAsync(running.Task, () => ["fc-init: ready uptime=1.20"], TimeSpan.FromMilliseconds(50));

        Assert.Equal(" (the VMM still runs)", why);
    }

    [Fact]
    public void A_VMM_that_exits_before_the_agent_answers_is_reported_with_its_last_three_output_lines()
    {
        var exit = new VmExit("vm1", 42, 1, Killed: false, DateTimeOffset.UtcNow);

        Assert.Equal("vm \"vm1\": the VMM exited with status 1 before the agent answered",
            MicroVm.ExitedBeforeTheAgentAnswered(exit, []));
        Assert.Equal("vm \"vm1\": the VMM exited with status 1 before the agent answered; its last output: b | c | Kernel panic - not syncing: ?[31m",
            MicroVm.ExitedBeforeTheAgentAnswered(exit, ["a", "b", "c", "Kernel panic - not syncing: \u001b[31m"]));
    }

    /// <summary>A client connected to a server that reads the first request and then closes the connection.</summary>
    private async Task<TtrpcClient> ConnectToAgentThatHangsUpAsync()
    {
        var listener = Listen(out string path);
        Socket client = await ConnectAsync(path);
        _ = Task.Run(async () =>
        {
            using (listener)
            using (Socket server = await listener.AcceptAsync())
            {
                await server.ReceiveAsync(new byte[4096]);
            }
        });
        return new TtrpcClient(client);
    }

    private Socket Listen(out string path)
    {
        path = Path.Combine(_dir, $"agent-{Guid.NewGuid():N}.sock");
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        return listener;
    }

    private static async Task<Socket> ConnectAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        return socket;
    }
}
