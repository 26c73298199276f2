using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace FirecrackerContainerd.Vsock.Tests.VhostUser;

/// <summary>The fc-vhost-vsock executable that the QEMU driver spawns beside QEMU.</summary>
public sealed class VsockDeviceExecutableTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private readonly string _directory = Path.Combine("/tmp", "fcve-" + Guid.NewGuid().ToString("N")[..10]);

    public VsockDeviceExecutableTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static Process Start(params string[] arguments)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "fc-vhost-vsock.dll");
        Assert.True(File.Exists(dll), $"{dll} was not built next to the tests");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(dll);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        return Process.Start(start)!;
    }

    [Fact]
    public async Task It_serves_the_front_end_and_exits_cleanly_on_SIGTERM()
    {
        string socket = Path.Combine(_directory, "vhost.sock");
        string uds = Path.Combine(_directory, "v.sock");
        using Process device = Start("--socket", socket, "--uds-path", uds, "--guest-cid", "3");
        try
        {
            var clock = Stopwatch.StartNew();
            while (!File.Exists(socket))
            {
                if (device.HasExited)
                {
                    Assert.Fail($"fc-vhost-vsock exited early: {await device.StandardError.ReadToEndAsync()}");
                }
                Assert.True(clock.Elapsed < Patience, "fc-vhost-vsock never created its socket");
                await Task.Delay(20);
            }
            using (Socket frontEnd = await ConnectWhenListeningAsync(socket, clock))
            {

                byte[] request = new byte[12];
                BinaryPrimitives.WriteUInt32LittleEndian(request, 1);
                BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(4), 1);
                await frontEnd.SendAsync(request);
                byte[] reply = new byte[20];
                using var timeout = new CancellationTokenSource(Patience);
                int received = 0;
                while (received < reply.Length)
                {
                    int read = await frontEnd.ReceiveAsync(reply.AsMemory(received), timeout.Token);
                    Assert.True(read > 0, "fc-vhost-vsock closed the vhost-user connection");
                    received += read;
                }
                Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(reply));

                Assert.Equal(0, Kill(device.Id, 15));
                using var exit = new CancellationTokenSource(Patience);
                await device.WaitForExitAsync(exit.Token);
            }
            Assert.Equal(0, device.ExitCode);
            Assert.False(File.Exists(socket));
            Assert.False(File.Exists(uds));
        }
        finally
        {
            if (!device.HasExited)
            {
                device.Kill();
                await device.WaitForExitAsync();
            }
        }
    }

    [Fact]
    public async Task Missing_arguments_print_the_usage_and_exit_2()
    {
        using Process device = Start("--socket", Path.Combine(_directory, "vhost.sock"));
        string stderr = await device.StandardError.ReadToEndAsync();
        using var exit = new CancellationTokenSource(Patience);
        await device.WaitForExitAsync(exit.Token);

        Assert.Equal(2, device.ExitCode);
        Assert.Contains("usage: fc-vhost-vsock", stderr);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    // The socket file exists from bind(2) on, a moment before listen(2): retry a refused connect with a new socket.
    private static async Task<Socket> ConnectWhenListeningAsync(string path, Stopwatch clock)
    {
        while (true)
        {
            var frontEnd = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await frontEnd.ConnectAsync(new UnixDomainSocketEndPoint(path));
                return frontEnd;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && clock.Elapsed < Patience)
            {
                frontEnd.Dispose();
                await Task.Delay(20);
            }
        }
    }
}
