using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using FirecrackerContainerd.TestSupport;
using Xunit.Abstractions;

namespace FirecrackerContainerd.Vsock.Tests.Vm;

/// <summary>The device against a real guest: QEMU (TCG) boots the Debian cloud kernel from
/// tools/image-builder, and the guest's socat talks AF_VSOCK through our vhost-user backend.</summary>
[Trait("Category", "Vm")]
public sealed class HybridVsockVmTests(ITestOutputHelper output)
{
    private const long StreamBytes = 256L * 1024 * 1024;
    private static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task A_host_connection_through_CONNECT_and_OK_echoes_bytes_from_the_guest()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        GuestImage image = await GuestImage.BuildAsync(agent: null, CancellationToken.None);
        output.WriteLine($"image {image.Directory} ready in {clock.Elapsed.TotalSeconds:F1} s");
        await using GuestVm vm = await GuestVm.StartAsync(image);
        output.WriteLine($"boot to /init ready: {vm.BootToInit.TotalSeconds:F1} s");
        using var timeout = new CancellationTokenSource(TestTimeout);

        (Socket socket, uint hostPort) = await vm.ConnectAsync(GuestVm.EchoPort, timeout.Token);
        using (socket)
        {
            Assert.InRange(hostPort, 1u << 30, (1u << 31) - 1);
            byte[] message = Encoding.ASCII.GetBytes("hello from the host\n");
            await socket.SendAsync(message, timeout.Token);
            byte[] echoed = await ReceiveExactlyAsync(socket, message.Length, timeout.Token);
            Assert.Equal(message, echoed);
        }
    }

    [Fact]
    public async Task A_connection_outlives_a_pause_of_the_VM_and_carries_bytes_after_the_resume()
    {
        await using GuestVm vm = await GuestVm.StartAsync(await GuestImage.BuildAsync(agent: null, CancellationToken.None));
        using var timeout = new CancellationTokenSource(TestTimeout);

        (Socket socket, _) = await vm.ConnectAsync(GuestVm.EchoPort, timeout.Token);
        using (socket)
        {
            byte[] before = Encoding.ASCII.GetBytes("before the pause\n");
            await socket.SendAsync(before, timeout.Token);
            Assert.Equal(before, await ReceiveExactlyAsync(socket, before.Length, timeout.Token));

            // QEMU stops the device's rings on "stop" and starts them where they were on "cont".
            await vm.QmpAsync(timeout.Token, "stop");
            byte[] during = Encoding.ASCII.GetBytes("sent while paused\n");
            await socket.SendAsync(during, timeout.Token);
            await vm.QmpAsync(timeout.Token, "cont");

            Assert.Equal(during, await ReceiveExactlyAsync(socket, during.Length, timeout.Token));
            byte[] after = Encoding.ASCII.GetBytes("after the resume\n");
            await socket.SendAsync(after, timeout.Token);
            Assert.Equal(after, await ReceiveExactlyAsync(socket, after.Length, timeout.Token));
        }
    }

    [Fact]
    public async Task Twenty_parallel_connections_each_get_their_own_bytes_back()
    {
        await using GuestVm vm = await GuestVm.StartAsync(await GuestImage.BuildAsync(agent: null, CancellationToken.None));
        using var timeout = new CancellationTokenSource(TestTimeout);

        uint[] ports = await Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
        {
            (Socket socket, uint hostPort) = await vm.ConnectAsync(GuestVm.EchoPort, timeout.Token);
            using (socket)
            {
                byte[] message = RandomNumberGenerator.GetBytes(100_000 + i);
                Task send = socket.SendAsync(message, timeout.Token).AsTask();
                byte[] echoed = await ReceiveExactlyAsync(socket, message.Length, timeout.Token);
                await send;
                Assert.Equal(message, echoed);
            }
            return hostPort;
        }));

        Assert.Equal(ports.Length, ports.Distinct().Count());
    }

    [Fact]
    public async Task A_guest_connection_to_host_port_P_reaches_the_unix_socket_uds_path_P()
    {
        await using GuestVm vm = await GuestVm.StartAsync(await GuestImage.BuildAsync(agent: null, CancellationToken.None));
        using var timeout = new CancellationTokenSource(TestTimeout);
        const uint hostPort = 5000;
        const int count = 100_000;
        string listenPath = $"{vm.UdsPath}_{hostPort}";
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(listenPath));
        listener.Listen(1);
        try
        {
            (Socket trigger, _) = await vm.ConnectAsync(GuestVm.SendZerosPort, timeout.Token);
            using (trigger)
            {
                await trigger.SendAsync(Encoding.ASCII.GetBytes($"{hostPort} {count}\n"), timeout.Token);
                using Socket fromGuest = await listener.AcceptAsync(timeout.Token);
                (long received, byte[] hash) = await DrainAsync(fromGuest, timeout.Token);
                Assert.Equal(count, received);
                Assert.Equal(SHA256.HashData(new byte[count]), hash);
                // The reply travels back to the guest's socat, which prints it on the trigger connection.
                await fromGuest.SendAsync("done\n"u8.ToArray(), timeout.Token);
                fromGuest.Shutdown(SocketShutdown.Send);
                Assert.Equal("done", await GuestVm.ReadLineAsync(trigger, timeout.Token));
            }
        }
        finally
        {
            File.Delete(listenPath);
        }
    }

    [Fact]
    public async Task A_256_MiB_stream_each_way_arrives_with_the_same_SHA256()
    {
        await using GuestVm vm = await GuestVm.StartAsync(await GuestImage.BuildAsync(agent: null, CancellationToken.None));
        using var timeout = new CancellationTokenSource(TestTimeout);

        // Host to guest: the guest hashes what it receives and sends the hash back.
        (Socket sink, _) = await vm.ConnectAsync(GuestVm.HashPort, timeout.Token);
        using (sink)
        {
            using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] block = RandomNumberGenerator.GetBytes(1 << 20);
            var clock = Stopwatch.StartNew();
            for (long sent = 0; sent < StreamBytes; sent += block.Length)
            {
                block[0] = (byte)(sent >> 20);
                hasher.AppendData(block);
                await sink.SendAsync(block, timeout.Token);
            }
            sink.Shutdown(SocketShutdown.Send);
            string guestHash = (await GuestVm.ReadLineAsync(sink, timeout.Token)).Split(' ')[0];
            clock.Stop();
            Assert.Equal(Convert.ToHexStringLower(hasher.GetHashAndReset()), guestHash);
            output.WriteLine($"host to guest: {Rate(StreamBytes, clock.Elapsed)}");
        }

        // Guest to host: a guest-initiated stream of zeros, counted and hashed here.
        const uint hostPort = 5001;
        string listenPath = $"{vm.UdsPath}_{hostPort}";
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(listenPath));
        listener.Listen(1);
        try
        {
            (Socket trigger, _) = await vm.ConnectAsync(GuestVm.SendZerosPort, timeout.Token);
            using (trigger)
            {
                await trigger.SendAsync(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{hostPort} {StreamBytes}\n")), timeout.Token);
                using Socket fromGuest = await listener.AcceptAsync(timeout.Token);
                var clock = Stopwatch.StartNew();
                (long received, byte[] hash) = await DrainAsync(fromGuest, timeout.Token);
                clock.Stop();
                Assert.Equal(StreamBytes, received);
                using var zeros = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                byte[] zeroBlock = new byte[1 << 20];
                for (long i = 0; i < StreamBytes; i += zeroBlock.Length)
                {
                    zeros.AppendData(zeroBlock);
                }
                Assert.Equal(zeros.GetHashAndReset(), hash);
                output.WriteLine($"guest to host: {Rate(StreamBytes, clock.Elapsed)}");
            }
        }
        finally
        {
            File.Delete(listenPath);
        }
    }

    private static string Rate(long bytes, TimeSpan elapsed) =>
        string.Create(CultureInfo.InvariantCulture, $"{bytes >> 20} MiB in {elapsed.TotalSeconds:F1} s = {bytes / 1048576.0 / elapsed.TotalSeconds:F1} MiB/s");

    private static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[count];
        int received = 0;
        while (received < count)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(received), cancellationToken);
            Assert.True(read > 0, $"stream ended after {received} of {count} bytes");
            received += read;
        }
        return buffer;
    }

    private static async Task<(long Count, byte[] Hash)> DrainAsync(Socket socket, CancellationToken cancellationToken)
    {
        using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[1 << 16];
        long total = 0;
        int read;
        while ((read = await socket.ReceiveAsync(buffer, cancellationToken)) > 0)
        {
            hasher.AppendData(buffer, 0, read);
            total += read;
        }
        return (total, hasher.GetHashAndReset());
    }
}
