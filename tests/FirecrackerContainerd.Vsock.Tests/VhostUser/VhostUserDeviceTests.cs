using System.Buffers.Binary;
using System.Net.Sockets;

namespace FirecrackerContainerd.Vsock.Tests.VhostUser;

/// <summary>The device's vhost-user end driven by the test as the front-end (QEMU's role).</summary>
public sealed class VhostUserDeviceTests : IDisposable
{
    private const uint GetFeatures = 1;
    private const uint GetProtocolFeatures = 15;
    private const uint GetConfig = 24;
    private const uint GetQueueNum = 17;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private readonly string _directory = Path.Combine("/tmp", "fcvu-" + Guid.NewGuid().ToString("N")[..10]);

    public VhostUserDeviceTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string SocketPath => Path.Combine(_directory, "vhost.sock");

    private string UdsPath => Path.Combine(_directory, "v.sock");

    private async Task<(Task Run, Socket FrontEnd, CancellationTokenSource Stop)> StartAsync(ulong guestCid = 42)
    {
        var stop = new CancellationTokenSource();
        var device = new VhostUserVsockDevice(new VhostUserVsockOptions(SocketPath, UdsPath, guestCid));
        Task run = device.RunAsync(stop.Token);
        while (!File.Exists(SocketPath))
        {
            Assert.False(run.IsCompleted, "the device stopped before listening");
            await Task.Delay(10);
        }
        var frontEnd = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await frontEnd.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath));
        return (run, frontEnd, stop);
    }

    private static async Task SendAsync(Socket socket, uint request, byte[] payload, uint flags = 1)
    {
        byte[] message = new byte[12 + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(message, request);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), (uint)payload.Length);
        payload.CopyTo(message, 12);
        await socket.SendAsync(message);
    }

    private static async Task<(uint Request, uint Flags, byte[] Payload)> ReceiveAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(Patience);
        byte[] header = await ReceiveExactlyAsync(socket, 12, timeout.Token);
        byte[] payload = await ReceiveExactlyAsync(socket, (int)BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)), timeout.Token);
        return (BinaryPrimitives.ReadUInt32LittleEndian(header), BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4)), payload);
    }

    private static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[count];
        for (int received = 0; received < count;)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(received), cancellationToken);
            Assert.True(read > 0, "the device closed the connection");
            received += read;
        }
        return buffer;
    }

    [Fact]
    public async Task The_device_offers_version_1_protocol_features_and_config_and_reports_the_guest_cid()
    {
        (Task run, Socket frontEnd, CancellationTokenSource stop) = await StartAsync(guestCid: 0x1234_5678);
        using (stop)
        using (frontEnd)
        {
            await SendAsync(frontEnd, GetFeatures, []);
            (uint request, uint flags, byte[] features) = await ReceiveAsync(frontEnd);
            Assert.Equal((GetFeatures, 1u | 4u), (request, flags));
            ulong featureBits = BinaryPrimitives.ReadUInt64LittleEndian(features);
            Assert.NotEqual(0ul, featureBits & (1ul << 32));
            Assert.NotEqual(0ul, featureBits & (1ul << 30));

            await SendAsync(frontEnd, GetProtocolFeatures, []);
            ulong protocolBits = BinaryPrimitives.ReadUInt64LittleEndian((await ReceiveAsync(frontEnd)).Payload);
            Assert.NotEqual(0ul, protocolBits & (1ul << 9));
            Assert.Equal(0ul, protocolBits & 1ul);

            byte[] configRequest = new byte[12 + 8];
            BinaryPrimitives.WriteUInt32LittleEndian(configRequest.AsSpan(4), 8);
            await SendAsync(frontEnd, GetConfig, configRequest);
            byte[] config = (await ReceiveAsync(frontEnd)).Payload;
            Assert.Equal(0x1234_5678ul, BinaryPrimitives.ReadUInt64LittleEndian(config.AsSpan(12)));

            await SendAsync(frontEnd, GetQueueNum, []);
            Assert.Equal(3ul, BinaryPrimitives.ReadUInt64LittleEndian((await ReceiveAsync(frontEnd)).Payload));

            // The front-end going away ends the device and removes both sockets.
            frontEnd.Shutdown(SocketShutdown.Both);
            await run.WaitAsync(Patience);
        }
        Assert.False(File.Exists(SocketPath));
        Assert.False(File.Exists(UdsPath));
    }

    [Theory]
    [InlineData(GetFeatures, 2u, 0)] // protocol version 2
    [InlineData(GetConfig, 1u, 100_000)] // payload beyond any vhost-user message
    [InlineData(GetConfig, 1u, 4)] // GET_CONFIG too short for its own header
    public async Task A_front_end_breaking_the_protocol_ends_the_session(uint request, uint flags, int payloadSize)
    {
        (Task run, Socket frontEnd, CancellationTokenSource stop) = await StartAsync();
        using (stop)
        using (frontEnd)
        {
            await SendAsync(frontEnd, request, new byte[Math.Min(payloadSize, 16)], flags);
            if (payloadSize > 16)
            {
                // Announce the big size in the header without sending the bytes.
                byte[] header = new byte[12];
                BinaryPrimitives.WriteUInt32LittleEndian(header, request);
                BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), flags);
                BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), (uint)payloadSize);
                await frontEnd.SendAsync(header);
            }

            Exception? failure = await Record.ExceptionAsync(() => run.WaitAsync(Patience));
            Assert.IsType<FirecrackerContainerd.Vsock.VhostUser.VhostUserProtocolException>(failure);
        }
        Assert.False(File.Exists(SocketPath));
        Assert.False(File.Exists(UdsPath));
    }

    [Fact]
    public async Task Cancelling_a_running_device_closes_the_front_end_and_removes_both_sockets()
    {
        (Task run, Socket frontEnd, CancellationTokenSource stop) = await StartAsync();
        using (stop)
        using (frontEnd)
        {
            await SendAsync(frontEnd, GetFeatures, []);
            await ReceiveAsync(frontEnd);

            await stop.CancelAsync();
            await run.WaitAsync(Patience);

            using var timeout = new CancellationTokenSource(Patience);
            Assert.Equal(0, await frontEnd.ReceiveAsync(new byte[12], timeout.Token));
        }
        Assert.False(File.Exists(SocketPath));
        Assert.False(File.Exists(UdsPath));
    }

    [Fact]
    public async Task The_uds_path_must_not_exist_yet()
    {
        await File.WriteAllTextAsync(UdsPath, "taken");
        var device = new VhostUserVsockDevice(new VhostUserVsockOptions(SocketPath, UdsPath, 3));

        IOException failure = await Assert.ThrowsAsync<IOException>(() => device.RunAsync(CancellationToken.None));

        Assert.Contains(UdsPath, failure.Message);
        Assert.False(File.Exists(SocketPath));
    }

    [Theory]
    [InlineData(0ul)]
    [InlineData(2ul)]
    [InlineData(0xffff_ffffUL)]
    public void Reserved_guest_cids_are_refused(ulong cid)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new VhostUserVsockDevice(new VhostUserVsockOptions(SocketPath, UdsPath, cid)));
    }
}
