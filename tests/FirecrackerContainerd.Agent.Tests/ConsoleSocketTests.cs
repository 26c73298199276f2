using System.Net.Sockets;
using FirecrackerContainerd.Agent.Stdio;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>The console socket against peers that do not send a terminal (runc sending one is in <see cref="TerminalTests"/>).</summary>
public sealed class ConsoleSocketTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-console-").FullName;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_peer_that_hangs_up_without_a_terminal_is_an_error()
    {
        using ConsoleSocket console = ConsoleSocket.Listen(Path.Combine(_dir, "1.sock"));
        Task<PseudoTerminal> master = console.ReceiveMasterAsync(_timeout.Token);
        (await ConnectAsync(console.Path)).Dispose();

        var e = await Assert.ThrowsAsync<IOException>(() => master);
        Assert.Contains("hung up without sending the terminal", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_that_sends_only_bytes_is_cut_off()
    {
        using ConsoleSocket console = ConsoleSocket.Listen(Path.Combine(_dir, "2.sock"));
        Task<PseudoTerminal> master = console.ReceiveMasterAsync(_timeout.Token);
        using Socket peer = await ConnectAsync(console.Path);
        await peer.SendAsync(new byte[10_000], _timeout.Token);

        var e = await Assert.ThrowsAsync<IOException>(() => master);
        Assert.Contains("expected one terminal fd, got 0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_path_too_long_for_a_socket_address_is_refused()
    {
        var e = Assert.Throws<IOException>(() => ConsoleSocket.Listen(Path.Combine(_dir, new string('x', 120) + ".sock")));
        Assert.Contains("longer than a Unix socket address allows", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dispose_removes_the_socket_file()
    {
        string path = Path.Combine(_dir, "3.sock");
        using (ConsoleSocket.Listen(path))
        {
            Assert.True(File.Exists(path));
        }

        Assert.False(File.Exists(path));
    }

    private async Task<Socket> ConnectAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), _timeout.Token);
        return socket;
    }
}
