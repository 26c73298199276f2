using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>Containers and execs with a terminal, run by runc on this host through the agent's console sockets.</summary>
public sealed class TerminalTests : IAsyncLifetime, IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(90));
    private AgentProcess _agent = null!;
    private uint _nextPort = 12000;

    public async Task InitializeAsync() => _agent = await AgentProcess.StartAsync(_timeout.Token);

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task A_container_with_a_terminal_echoes_input_and_sees_its_resized_window()
    {
        byte[] spec = _agent.PrepareBundle("t1", "sh", "-c", "tty; read line; stty size; echo got:$line");
        var (stdinPort, stdoutPort) = NextPorts();
        await _agent.CallTaskAsync<CreateTaskResponse>("Create", new CreateTaskRequest
        {
            Id = "t1",
            Terminal = true,
            Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFrom(spec), StdinPort = stdinPort, StdoutPort = stdoutPort }),
        }, _timeout.Token);
        using Socket stdin = await _agent.ConnectStdioAsync(stdinPort, _timeout.Token);
        using Socket stdout = await _agent.ConnectStdioAsync(stdoutPort, _timeout.Token);
        await _agent.CallTaskAsync<StartResponse>("Start", new StartRequest { Id = "t1" }, _timeout.Token);

        var output = new StringBuilder();
        await ReadUntilAsync(stdout, output, "\r\n");
        await _agent.CallTaskAsync<Empty>("ResizePty", new ResizePtyRequest { Id = "t1", Width = 100, Height = 30 }, _timeout.Token);
        await stdin.SendAsync("hello\n"u8.ToArray(), _timeout.Token);
        await ReadToEndAsync(stdout, output);

        // The terminal's own echo of the typed line comes before the answers of stty and the shell.
        Assert.Matches(new Regex(@"^/dev/pts/\d+\r\nhello\r\n30 100\r\ngot:hello\r\n$"), output.ToString());
        Assert.Equal(0u, (await _agent.CallTaskAsync<WaitResponse>("Wait", new WaitRequest { Id = "t1" }, _timeout.Token)).ExitStatus);
        Assert.True((await _agent.CallTaskAsync<StateResponse>("State", new StateRequest { Id = "t1" }, _timeout.Token)).Terminal);
        await _agent.CallTaskAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "t1" }, _timeout.Token);
    }

    [Fact]
    public async Task An_exec_with_a_terminal_gets_the_size_asked_before_start_and_reads_until_close_io_types_end_of_file()
    {
        byte[] spec = _agent.PrepareBundle("t2", "sleep", "60");
        await _agent.CallTaskAsync<CreateTaskResponse>("Create", new CreateTaskRequest
        {
            Id = "t2",
            Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFrom(spec) }),
        }, _timeout.Token);
        await _agent.CallTaskAsync<StartResponse>("Start", new StartRequest { Id = "t2" }, _timeout.Token);

        var (stdinPort, stdoutPort) = NextPorts();
        var extra = new ExtraData
        {
            JsonSpec = ByteString.CopyFromUtf8(AgentProcess.ProcessJson("sh", "-c", "tty; read x; stty size; cat; echo cat-done").ToJsonString()),
            StdinPort = stdinPort,
            StdoutPort = stdoutPort,
        };
        await _agent.CallTaskAsync<Empty>("Exec", new ExecProcessRequest { Id = "t2", ExecId = "e1", Terminal = true, Spec = Any.Pack(extra) }, _timeout.Token);

        // Asked before the exec has a terminal, the size is set once the runtime hands the terminal over.
        await _agent.CallTaskAsync<Empty>("ResizePty", new ResizePtyRequest { Id = "t2", ExecId = "e1", Width = 80, Height = 24 }, _timeout.Token);
        using Socket stdin = await _agent.ConnectStdioAsync(stdinPort, _timeout.Token);
        using Socket stdout = await _agent.ConnectStdioAsync(stdoutPort, _timeout.Token);
        await _agent.CallTaskAsync<StartResponse>("Start", new StartRequest { Id = "t2", ExecId = "e1" }, _timeout.Token);

        // Each line is typed once the shell has answered the previous one, so the echo order is fixed.
        var output = new StringBuilder();
        await ReadUntilAsync(stdout, output, "\r\n");
        await stdin.SendAsync("go\n"u8.ToArray(), _timeout.Token);
        await ReadUntilAsync(stdout, output, "24 80\r\n");
        await stdin.SendAsync("abc\n"u8.ToArray(), _timeout.Token);
        await ReadUntilAsync(stdout, output, "abc\r\nabc\r\n");
        await _agent.CallTaskAsync<Empty>("CloseIO", new CloseIORequest { Id = "t2", ExecId = "e1", Stdin = true }, _timeout.Token);
        await ReadToEndAsync(stdout, output);

        Assert.Matches(new Regex(@"^/dev/pts/\d+\r\ngo\r\n24 80\r\nabc\r\nabc\r\ncat-done\r\n$"), output.ToString());
        Assert.Equal(0u, (await _agent.CallTaskAsync<WaitResponse>("Wait", new WaitRequest { Id = "t2", ExecId = "e1" }, _timeout.Token)).ExitStatus);

        await _agent.CallTaskAsync<Empty>("Kill", new KillRequest { Id = "t2", Signal = 9 }, _timeout.Token);
        await _agent.CallTaskAsync<WaitResponse>("Wait", new WaitRequest { Id = "t2" }, _timeout.Token);
        await _agent.CallTaskAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "t2" }, _timeout.Token);
    }

    [Fact]
    public async Task Terminal_output_written_before_the_host_connects_is_kept_and_the_exit_waits_for_it()
    {
        byte[] spec = _agent.PrepareBundle("t4", "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done; exit 5");
        var (_, stdoutPort) = NextPorts();
        await _agent.CallTaskAsync<CreateTaskResponse>("Create", new CreateTaskRequest
        {
            Id = "t4",
            Terminal = true,
            Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFrom(spec), StdoutPort = stdoutPort }),
        }, _timeout.Token);
        await _agent.CallTaskAsync<StartResponse>("Start", new StartRequest { Id = "t4" }, _timeout.Token);
        Task<WaitResponse> exit = _agent.CallTaskAsync<WaitResponse>("Wait", new WaitRequest { Id = "t4" }, _timeout.Token);
        await System.Threading.Tasks.Task.Delay(500);

        // The shell has long exited, but its output has not reached the host: the exit waits for it.
        Assert.False(exit.IsCompleted, "the exit was reported before the host had the terminal's output");
        using Socket stdout = await _agent.ConnectStdioAsync(stdoutPort, _timeout.Token);
        var output = new StringBuilder();
        await ReadToEndAsync(stdout, output);

        Assert.Equal(string.Concat(Enumerable.Range(0, 300).Select(i => $"line-{i}\r\n")), output.ToString());
        Assert.Equal(5u, (await exit).ExitStatus);
        await _agent.CallTaskAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "t4" }, _timeout.Token);
    }

    [Fact]
    public async Task ResizePty_refuses_processes_without_a_terminal_and_unknown_ones()
    {
        byte[] spec = _agent.PrepareBundle("t3", "sleep", "60");
        await _agent.CallTaskAsync<CreateTaskResponse>("Create", new CreateTaskRequest
        {
            Id = "t3",
            Options = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFrom(spec) }),
        }, _timeout.Token);

        var noTerminal = await Assert.ThrowsAsync<TtrpcException>(() =>
            _agent.CallTaskAsync<Empty>("ResizePty", new ResizePtyRequest { Id = "t3", Width = 80, Height = 24 }, _timeout.Token));
        Assert.Equal(StatusCode.FailedPrecondition, noTerminal.StatusCode);
        Assert.Contains("has no terminal", noTerminal.Message, StringComparison.Ordinal);

        var unknownExec = await Assert.ThrowsAsync<TtrpcException>(() =>
            _agent.CallTaskAsync<Empty>("ResizePty", new ResizePtyRequest { Id = "t3", ExecId = "nope", Width = 80, Height = 24 }, _timeout.Token));
        Assert.Equal(StatusCode.NotFound, unknownExec.StatusCode);

        var unknownTask = await Assert.ThrowsAsync<TtrpcException>(() =>
            _agent.CallTaskAsync<Empty>("ResizePty", new ResizePtyRequest { Id = "nope", Width = 80, Height = 24 }, _timeout.Token));
        Assert.Equal(StatusCode.NotFound, unknownTask.StatusCode);

        var tooWide = await Assert.ThrowsAsync<TtrpcException>(() =>
            _agent.CallTaskAsync<Empty>("ResizePty", new ResizePtyRequest { Id = "t3", Width = 70000, Height = 24 }, _timeout.Token));
        Assert.Equal(StatusCode.InvalidArgument, tooWide.StatusCode);

        var stderrWithTerminal = await Assert.ThrowsAsync<TtrpcException>(() =>
            _agent.CallTaskAsync<Empty>("Exec", new ExecProcessRequest
            {
                Id = "t3",
                ExecId = "e1",
                Terminal = true,
                Spec = Any.Pack(new ExtraData { JsonSpec = ByteString.CopyFromUtf8(AgentProcess.ProcessJson("true").ToJsonString()), StdoutPort = 12900, StderrPort = 12901 }),
            }, _timeout.Token));
        Assert.Equal(StatusCode.InvalidArgument, stderrWithTerminal.StatusCode);

        await _agent.CallTaskAsync<Empty>("Kill", new KillRequest { Id = "t3", Signal = 9 }, _timeout.Token);
        await _agent.CallTaskAsync<WaitResponse>("Wait", new WaitRequest { Id = "t3" }, _timeout.Token);
        await _agent.CallTaskAsync<DeleteResponse>("Delete", new DeleteRequest { Id = "t3" }, _timeout.Token);
    }

    private (uint Stdin, uint Stdout) NextPorts()
    {
        uint first = _nextPort;
        _nextPort += 3;
        return (first, first + 1);
    }

    private async Task ReadUntilAsync(Socket socket, StringBuilder output, string expected)
    {
        byte[] buffer = new byte[4096];
        while (!output.ToString().Contains(expected, StringComparison.Ordinal))
        {
            int n = await socket.ReceiveAsync(buffer, _timeout.Token);
            Assert.True(n > 0, $"the terminal ended before \"{Regex.Escape(expected)}\"; it wrote \"{Regex.Escape(output.ToString())}\"");
            output.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
    }

    private async Task ReadToEndAsync(Socket socket, StringBuilder output)
    {
        byte[] buffer = new byte[4096];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, _timeout.Token)) > 0)
        {
            output.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
    }
}
