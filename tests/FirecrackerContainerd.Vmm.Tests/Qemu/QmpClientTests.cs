using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Qemu;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>The QMP client against a real QEMU (an empty machine: no kernel needed) and against hostile peers.</summary>
public sealed class QmpClientTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-qmp-").FullName;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Drives_a_real_qemu_through_stop_cont_and_quit()
    {
        string socket = Path.Combine(_dir, "qmp.sock");
        using Process qemu = StartEmptyQemu(socket);
        try
        {
            await using QmpClient qmp = await ConnectWhenReadyAsync(socket);

            Assert.Equal("running", (await qmp.ExecuteAsync("query-status", _timeout.Token)).GetProperty("status").GetString());
            await qmp.ExecuteAsync("stop", _timeout.Token);
            Assert.Equal("paused", (await qmp.ExecuteAsync("query-status", _timeout.Token)).GetProperty("status").GetString());
            Assert.Equal("STOP", (await qmp.Events.ReadAsync(_timeout.Token)).Name);
            await qmp.ExecuteAsync("cont", _timeout.Token);
            Assert.Equal("running", (await qmp.ExecuteAsync("query-status", _timeout.Token)).GetProperty("status").GetString());
            Assert.Equal("RESUME", (await qmp.Events.ReadAsync(_timeout.Token)).Name);

            await qmp.ExecuteAsync("quit", _timeout.Token);
            await qemu.WaitForExitAsync(_timeout.Token);
            await qmp.Completion.WaitAsync(_timeout.Token);
            var names = new List<string>();
            await foreach (QmpEvent e in qmp.Events.ReadAllAsync(_timeout.Token))
            {
                names.Add(e.Name);
            }

            Assert.Contains("SHUTDOWN", names);
            await Assert.ThrowsAsync<IOException>(() => qmp.ExecuteAsync("query-status", _timeout.Token));
        }
        finally
        {
            KillQuietly(qemu);
        }
    }

    [Fact]
    public async Task A_descriptor_sent_with_add_fd_lands_in_an_fdset_that_a_file_node_opens()
    {
        string socket = Path.Combine(_dir, "qmp.sock");
        string image = Path.Combine(_dir, "drive.img");
        File.WriteAllBytes(image, new byte[1 << 20]);
        using Process qemu = StartEmptyQemu(socket);
        try
        {
            await using QmpClient qmp = await ConnectWhenReadyAsync(socket);
            using var file = File.OpenHandle(image, FileMode.Open, FileAccess.ReadWrite);

            System.Text.Json.JsonElement added = await qmp.ExecuteWithDescriptorAsync("add-fd", null, file, _timeout.Token);
            long fdset = added.GetProperty("fdset-id").GetInt64();
            await qmp.ExecuteAsync("blockdev-add", w =>
            {
                w.WriteString("driver", "file");
                w.WriteString("node-name", "f1");
                w.WriteString("filename", $"/dev/fdset/{fdset}");
            }, _timeout.Token);

            System.Text.Json.JsonElement nodes = await qmp.ExecuteAsync("query-named-block-nodes", _timeout.Token);
            Assert.Contains(nodes.EnumerateArray(), n => n.GetProperty("node-name").GetString() == "f1");
            System.Text.Json.JsonElement fdsets = await qmp.ExecuteAsync("query-fdsets", _timeout.Token);
            Assert.Single(Assert.Single(fdsets.EnumerateArray(), f => f.GetProperty("fdset-id").GetInt64() == fdset).GetProperty("fds").EnumerateArray());
            await qmp.ExecuteAsync("blockdev-del", w => w.WriteString("node-name", "f1"), _timeout.Token);
            await qmp.ExecuteAsync("remove-fd", w => w.WriteNumber("fdset-id", fdset), _timeout.Token);
        }
        finally
        {
            KillQuietly(qemu);
        }
    }

    [Fact]
    public async Task An_unknown_command_fails_with_qemus_error_class_and_text()
    {
        string socket = Path.Combine(_dir, "qmp.sock");
        using Process qemu = StartEmptyQemu(socket);
        try
        {
            await using QmpClient qmp = await ConnectWhenReadyAsync(socket);
            var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("no-such-command", _timeout.Token));
            Assert.Equal("CommandNotFound", e.ErrorClass);
            Assert.Equal("no-such-command", e.Command);
            Assert.Contains("no-such-command", e.Description, StringComparison.Ordinal);

            // The connection stays usable after an error.
            Assert.Equal("running", (await qmp.ExecuteAsync("query-status", _timeout.Token)).GetProperty("status").GetString());
        }
        finally
        {
            KillQuietly(qemu);
        }
    }

    [Theory]
    [InlineData("not json at all\n")]
    [InlineData("[1,2,3]\n")]
    [InlineData("{\"notQMP\": {}}\n")]
    public async Task A_peer_that_does_not_greet_like_qemu_is_refused(string greeting)
    {
        string socket = Path.Combine(_dir, "fake.sock");
        using var listener = Listen(socket);
        Task serve = ServeOnceAsync(listener, Encoding.UTF8.GetBytes(greeting));
        await Assert.ThrowsAsync<InvalidDataException>(() => QmpClient.ConnectAsync(socket, _timeout.Token));
        await serve;
    }

    [Fact]
    public async Task An_endless_line_fails_pending_commands_instead_of_growing_memory()
    {
        string socket = Path.Combine(_dir, "fake.sock");
        using var listener = Listen(socket);
        Task serve = Task.Run(async () =>
        {
            using Socket peer = await listener.AcceptAsync(_timeout.Token);
            await peer.SendAsync("{\"QMP\": {}}\n"u8.ToArray(), _timeout.Token);
            var buffer = new byte[4096];
            _ = await peer.ReceiveAsync(buffer, _timeout.Token); // qmp_capabilities
            await peer.SendAsync("{\"return\": {}, \"id\": 1}\n"u8.ToArray(), _timeout.Token);
            _ = await peer.ReceiveAsync(buffer, _timeout.Token); // the next command
            byte[] junk = new byte[1 << 20];
            Array.Fill(junk, (byte)'x');
            try
            {
                for (int i = 0; i < 6; i++)
                {
                    await peer.SendAsync(junk, _timeout.Token);
                }
            }
            catch (SocketException)
            {
                // The client hung up, as it should.
            }
        });

        await using QmpClient qmp = await QmpClient.ConnectAsync(socket, _timeout.Token);
        var e = await Assert.ThrowsAsync<IOException>(() => qmp.ExecuteAsync("query-status", _timeout.Token));
        Assert.Contains("connection closed", e.Message, StringComparison.Ordinal);
        await serve;
    }

    internal static Process StartEmptyQemu(string qmpSocket)
    {
        var info = new ProcessStartInfo(QemuBinary.Require())
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in new[] { "-M", "none", "-nodefaults", "-display", "none", "-qmp", $"unix:{qmpSocket},server=on,wait=off" })
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info)!;
    }

    private async Task<QmpClient> ConnectWhenReadyAsync(string socket)
    {
        while (true)
        {
            try
            {
                return await QmpClient.ConnectAsync(socket, _timeout.Token);
            }
            catch (Exception e) when (e is SocketException or FileNotFoundException)
            {
                // Not yet created, or not yet listening.
                await Task.Delay(20, _timeout.Token);
            }
        }
    }

    private static Socket Listen(string path)
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        return listener;
    }

    private async Task ServeOnceAsync(Socket listener, byte[] greeting)
    {
        using Socket peer = await listener.AcceptAsync(_timeout.Token);
        await peer.SendAsync(greeting, _timeout.Token);
        var buffer = new byte[1024];
        try
        {
            while (await peer.ReceiveAsync(buffer, _timeout.Token) > 0)
            {
            }
        }
        catch (SocketException)
        {
        }
    }

    internal static void KillQuietly(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit();
            }
        }
        catch (InvalidOperationException)
        {
        }
    }
}
