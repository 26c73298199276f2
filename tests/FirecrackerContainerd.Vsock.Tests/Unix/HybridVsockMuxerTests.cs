using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using FirecrackerContainerd.Vsock.Packet;
using FirecrackerContainerd.Vsock.Unix;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Vsock.Tests.Unix;

/// <summary>The muxer with real Unix sockets on the host side and the test playing the guest driver.</summary>
#pragma warning disable CA1001 // Disposed in IAsyncLifetime.DisposeAsync, which xunit calls.
public sealed class HybridVsockMuxerTests : IAsyncLifetime
#pragma warning restore CA1001
{
    private const ulong GuestCid = 3;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private readonly object _gate = new();
    private readonly string _directory = Path.Combine("/tmp", "fcmx-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(VsockHeader Header, byte[] Payload)> _toGuest = [];
    private HybridVsockMuxer _muxer = null!;
    private Socket _listener = null!;
    private Task _acceptLoop = Task.CompletedTask;

    private string UdsPath => Path.Combine(_directory, "v.sock");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        _muxer = new HybridVsockMuxer(_gate, UdsPath, GuestCid, () => { }, NullLogger.Instance);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(UdsPath));
        _listener.Listen(16);
        _acceptLoop = _muxer.AcceptAsync(_listener, _stop.Token);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _muxer.DisposeAsync();
        await _acceptLoop;
        _stop.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private static GuestPacket FromGuest(VsockOp op, uint guestPort, uint hostPort, byte[]? payload = null) =>
        new(new VsockHeader(GuestCid, 2, guestPort, hostPort, (uint)(payload?.Length ?? 0), 1, op, 0, 1 << 20, 0), payload ?? []);

    private void Send(GuestPacket packet)
    {
        lock (_gate)
        {
            _muxer.OnGuestPacket(packet);
        }
    }

    /// <summary>Plays the RX queue: collects packets until one matches.</summary>
    private async Task<(VsockHeader Header, byte[] Payload)> ExpectAsync(Func<VsockHeader, bool> match)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            lock (_gate)
            {
                byte[] buffer = new byte[4096];
                while (_muxer.TakeRxPacket(buffer, out int length) is { } header)
                {
                    _toGuest.Add((header, buffer[..length]));
                }
            }
            int index = _toGuest.FindIndex(p => match(p.Header));
            if (index >= 0)
            {
                var found = _toGuest[index];
                _toGuest.RemoveRange(0, index + 1);
                return found;
            }
            Assert.True(clock.Elapsed < Patience, $"no matching packet; saw {string.Join(", ", _toGuest.Select(p => p.Header.Op))}");
            await Task.Delay(10);
        }
    }

    private async Task<Socket> ConnectAsync(string request)
    {
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(UdsPath));
        await client.SendAsync(Encoding.ASCII.GetBytes(request));
        return client;
    }

    private static async Task<int> ReadAsync(Socket socket, byte[] buffer)
    {
        using var timeout = new CancellationTokenSource(Patience);
        return await socket.ReceiveAsync(buffer, timeout.Token);
    }

    /// <summary>True when the peer closed: end of stream, or a reset when it closed with our bytes unread.</summary>
    private static async Task<bool> IsClosedAsync(Socket socket)
    {
        try
        {
            return await ReadAsync(socket, new byte[64]) == 0;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return true;
        }
    }

    [Fact]
    public async Task CONNECT_is_acknowledged_with_OK_only_after_the_guest_responds_and_then_carries_data()
    {
        using Socket client = await ConnectAsync("CONNECT 52\n");
        VsockHeader request = (await ExpectAsync(h => h.Op == VsockOp.Request)).Header;
        Assert.Equal((2ul, GuestCid, 52u), (request.SrcCid, request.DstCid, request.DstPort));
        Assert.Equal(0, client.Available);

        Send(FromGuest(VsockOp.Response, 52, request.SrcPort));
        using var timeout = new CancellationTokenSource(Patience);
        Assert.Equal($"OK {request.SrcPort}", await Vm.GuestVm.ReadLineAsync(client, timeout.Token));

        await client.SendAsync("ping"u8.ToArray());
        var data = await ExpectAsync(h => h.Op == VsockOp.Rw);
        Assert.Equal("ping"u8.ToArray(), data.Payload);

        Send(FromGuest(VsockOp.Rw, 52, request.SrcPort, "pong"u8.ToArray()));
        byte[] buffer = new byte[16];
        Assert.Equal("pong", Encoding.ASCII.GetString(buffer, 0, await ReadAsync(client, buffer)));
    }

    [Fact]
    public async Task The_host_dialer_completes_its_handshake_with_the_muxer()
    {
        var options = new HybridVsockDialOptions(Patience, TimeSpan.FromMilliseconds(20), Patience);
        Task<Socket> dial = HybridVsockDialer.DialAsync(UdsPath, 54, options, CancellationToken.None);
        VsockHeader request = (await ExpectAsync(h => h.Op == VsockOp.Request && h.DstPort == 54)).Header;

        Send(FromGuest(VsockOp.Response, 54, request.SrcPort));
        using Socket socket = await dial.WaitAsync(Patience);
        Send(FromGuest(VsockOp.Rw, 54, request.SrcPort, "hello"u8.ToArray()));

        byte[] buffer = new byte[16];
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer, 0, await ReadAsync(socket, buffer)));
    }

    [Theory]
    [InlineData("HELLO\n")]
    [InlineData("CONNECT abc\n")]
    [InlineData("CONNECT 1234567890123456789012345678901234567890\n")]
    public async Task A_malformed_request_closes_the_client_without_an_answer(string request)
    {
        using Socket client = await ConnectAsync(request);

        Assert.True(await IsClosedAsync(client));
        Assert.Equal(0, _muxer.ConnectionCount);
    }

    [Fact]
    public async Task A_guest_reset_instead_of_a_response_closes_the_client()
    {
        using Socket client = await ConnectAsync("CONNECT 53\n");
        VsockHeader request = (await ExpectAsync(h => h.Op == VsockOp.Request)).Header;

        Send(FromGuest(VsockOp.Rst, 53, request.SrcPort));

        Assert.Equal(0, await ReadAsync(client, new byte[64]));
        Assert.Equal(0, _muxer.ConnectionCount);
    }

    [Fact]
    public async Task A_guest_request_reaches_the_socket_named_after_the_port()
    {
        string path = $"{UdsPath}_6001";
        using var service = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        service.Bind(new UnixDomainSocketEndPoint(path));
        service.Listen(1);

        Send(FromGuest(VsockOp.Request, 7000, 6001));
        using Socket accepted = await service.AcceptAsync().WaitAsync(Patience);
        VsockHeader response = (await ExpectAsync(h => h.Op == VsockOp.Response)).Header;

        Assert.Equal((6001u, 7000u), (response.SrcPort, response.DstPort));
        Send(FromGuest(VsockOp.Rw, 7000, 6001, "from guest"u8.ToArray()));
        byte[] buffer = new byte[32];
        Assert.Equal("from guest", Encoding.ASCII.GetString(buffer, 0, await ReadAsync(accepted, buffer)));
    }

    [Fact]
    public async Task A_guest_request_to_a_port_nobody_serves_is_reset()
    {
        Send(FromGuest(VsockOp.Request, 7001, 6002));

        VsockHeader reset = (await ExpectAsync(h => h.Op == VsockOp.Rst)).Header;

        Assert.Equal((6002u, 7001u), (reset.SrcPort, reset.DstPort));
        Assert.Equal(0, _muxer.ConnectionCount);
    }

    [Fact]
    public async Task Packets_for_unknown_connections_are_reset_but_resets_are_not_answered()
    {
        Send(FromGuest(VsockOp.Rst, 7002, 6003));
        Send(FromGuest(VsockOp.Rw, 7003, 6004, [1, 2, 3]));

        VsockHeader reset = (await ExpectAsync(h => h.Op == VsockOp.Rst)).Header;

        Assert.Equal((6004u, 7003u), (reset.SrcPort, reset.DstPort));
        Assert.Empty(_toGuest);
    }

    [Fact]
    public async Task A_malformed_packet_resets_its_connection_and_leaves_the_others_alone()
    {
        using Socket first = await ConnectAsync("CONNECT 60\n");
        VsockHeader firstRequest = (await ExpectAsync(h => h.Op == VsockOp.Request && h.DstPort == 60)).Header;
        using Socket second = await ConnectAsync("CONNECT 61\n");
        VsockHeader secondRequest = (await ExpectAsync(h => h.Op == VsockOp.Request && h.DstPort == 61)).Header;
        Send(FromGuest(VsockOp.Response, 60, firstRequest.SrcPort));
        Send(FromGuest(VsockOp.Response, 61, secondRequest.SrcPort));
        using var timeout = new CancellationTokenSource(Patience);
        await Vm.GuestVm.ReadLineAsync(first, timeout.Token);
        await Vm.GuestVm.ReadLineAsync(second, timeout.Token);

        lock (_gate)
        {
            _muxer.OnRejectedPacket(new VsockHeader(GuestCid, 2, 60, firstRequest.SrcPort, 1 << 20, 1, VsockOp.Rw, 0, 0, 0));
        }

        VsockHeader reset = (await ExpectAsync(h => h.Op == VsockOp.Rst)).Header;
        Assert.Equal(60u, reset.DstPort);
        Assert.Equal(0, await ReadAsync(first, new byte[8]));
        Send(FromGuest(VsockOp.Rw, 61, secondRequest.SrcPort, "still here"u8.ToArray()));
        byte[] buffer = new byte[32];
        Assert.Equal("still here", Encoding.ASCII.GetString(buffer, 0, await ReadAsync(second, buffer)));
    }
}
