using System.Net.Sockets;
using System.Text;
using FirecrackerContainerd.Vsock.Unix;

namespace FirecrackerContainerd.Vsock.Tests.Unix;

/// <summary>The dialer against a hand-made hybrid vsock server on a real Unix socket.</summary>
public sealed class HybridVsockDialerTests : IDisposable
{
    private static readonly HybridVsockDialOptions Quick =
        new(TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(20), TimeSpan.FromSeconds(1));

    private readonly string _dir = Directory.CreateTempSubdirectory("fc-hvsock-").FullName;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    private string Uds => Path.Combine(_dir, "firecracker.vsock");

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Sends_CONNECT_and_keeps_bytes_that_follow_the_OK()
    {
        using Socket listener = Listen();
        Task<string> server = Task.Run(async () =>
        {
            using Socket peer = await listener.AcceptAsync(_timeout.Token);
            string request = await ReadLineAsync(peer);
            await peer.SendAsync("OK 1073741824\nHELLO"u8.ToArray(), _timeout.Token);
            await Task.Delay(200, _timeout.Token);
            return request;
        });

        using Socket socket = await HybridVsockDialer.DialAsync(Uds, 10789, Quick, _timeout.Token);
        Assert.Equal("CONNECT 10789", await server);
        var buffer = new byte[5];
        int got = 0;
        while (got < 5)
        {
            got += await socket.ReceiveAsync(buffer.AsMemory(got), _timeout.Token);
        }

        Assert.Equal("HELLO", Encoding.ASCII.GetString(buffer));
    }

    [Fact]
    public async Task Retries_while_the_socket_is_missing_and_the_guest_refuses()
    {
        Task<Socket> dial = HybridVsockDialer.DialAsync(Uds, 5, Quick, _timeout.Token);
        await Task.Delay(200);
        using Socket listener = Listen();
        for (int i = 0; i < 3; i++)
        {
            using Socket refused = await listener.AcceptAsync(_timeout.Token);
            _ = await ReadLineAsync(refused); // the guest is not listening yet: the VMM hangs up
        }

        using (Socket accepted = await listener.AcceptAsync(_timeout.Token))
        {
            _ = await ReadLineAsync(accepted);
            await accepted.SendAsync("OK 7\n"u8.ToArray(), _timeout.Token);
            using Socket connected = await dial;
            Assert.True(connected.Connected);
        }
    }

    [Theory]
    [InlineData("NO\n")]
    [InlineData("OK\n")]
    [InlineData("OK 12x\n")]
    [InlineData("OK 99999999999999999999999\n")]
    public async Task Gives_up_with_the_path_port_and_last_answer(string answer)
    {
        using Socket listener = Listen();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_timeout.Token);
        Task server = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    using Socket peer = await listener.AcceptAsync(stop.Token);
                    _ = await ReadLineAsync(peer);
                    await peer.SendAsync(Encoding.ASCII.GetBytes(answer), stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        var e = await Assert.ThrowsAsync<TimeoutException>(() => HybridVsockDialer.DialAsync(Uds, 42, Quick, _timeout.Token));
        Assert.Contains($"vsock port 42 through {Uds}", e.Message, StringComparison.Ordinal);
        Assert.Contains(answer.Length > 17 ? "longer than" : answer.TrimEnd('\n'), e.Message, StringComparison.Ordinal);
        await stop.CancelAsync();
        await server;
    }

    [Fact]
    public async Task Gives_up_when_nobody_listens()
    {
        var e = await Assert.ThrowsAsync<TimeoutException>(() => HybridVsockDialer.DialAsync(Uds, 1, Quick, _timeout.Token));
        Assert.Contains("attempts", e.Message, StringComparison.Ordinal);
    }

    private Socket Listen()
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(Uds));
        listener.Listen(16);
        return listener;
    }

    private async Task<string> ReadLineAsync(Socket peer)
    {
        var sb = new StringBuilder();
        var one = new byte[1];
        while (await peer.ReceiveAsync(one, _timeout.Token) == 1 && one[0] != '\n')
        {
            sb.Append((char)one[0]);
        }

        return sb.ToString();
    }
}
