using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>The balloon's QMP commands: their shapes against a scripted peer and a real QEMU, and the checks on what comes back.</summary>
public sealed class QemuBalloonTests : IDisposable
{
    private const int GuestMib = 256;
    private const long GuestBytes = (long)GuestMib << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-balloon-").FullName;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Commands_name_the_device_and_convert_the_target_to_the_guests_remaining_bytes()
    {
        await using var peer = new ScriptedQmpPeer(Path.Combine(_dir, "qmp.sock"), (_, _) => "{}");
        await using QmpClient qmp = await QmpClient.ConnectAsync(peer.SocketPath, _timeout.Token);
        var balloon = new QemuBalloon(qmp, "vm1", GuestMib);

        await balloon.SetTargetAsync(64, _timeout.Token);
        await balloon.SetTargetAsync(0, _timeout.Token);
        await balloon.SetStatisticsIntervalAsync(5, _timeout.Token);

        Assert.Equal(
            [
                """{"execute":"balloon","arguments":{"value":201326592}}""",
                """{"execute":"balloon","arguments":{"value":268435456}}""",
                """{"execute":"qom-set","arguments":{"path":"/machine/peripheral/balloon","property":"guest-stats-polling-interval","value":5}}""",
            ],
            peer.Commands.Skip(1));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(GuestMib)]
    [InlineData(int.MaxValue)]
    public async Task A_target_outside_the_guest_is_refused_before_qemu_hears_of_it(int amountMib)
    {
        await using var peer = new ScriptedQmpPeer(Path.Combine(_dir, "qmp.sock"), (_, _) => "{}");
        await using QmpClient qmp = await QmpClient.ConnectAsync(peer.SocketPath, _timeout.Token);
        var balloon = new QemuBalloon(qmp, "vm1", GuestMib);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => balloon.SetTargetAsync(amountMib, _timeout.Token));
        Assert.Equal(["qmp_capabilities"], peer.Commands.Select(c => JsonDocument.Parse(c).RootElement.GetProperty("execute").GetString()));
    }

    [Fact]
    public async Task Statistics_are_read_from_the_device_object_with_unreported_values_as_null()
    {
        const string stats = """
            {"stats": {"stat-swap-in": 0, "stat-swap-out": 0, "stat-major-faults": 12, "stat-minor-faults": 34567,
                       "stat-free-memory": 150000000, "stat-total-memory": 200000000, "stat-available-memory": 160000000,
                       "stat-disk-caches": 1000000, "stat-htlb-pgalloc": 18446744073709551615, "stat-htlb-pgfail": -1},
             "last-update": 1700000000}
            """;
        await using var peer = new ScriptedQmpPeer(Path.Combine(_dir, "qmp.sock"), (command, _) => command switch
        {
            "query-balloon" => """{"actual": 201326592}""",
            "qom-get" => stats,
            _ => "{}",
        });
        await using QmpClient qmp = await QmpClient.ConnectAsync(peer.SocketPath, _timeout.Token);
        var balloon = new QemuBalloon(qmp, "vm1", GuestMib);

        Assert.Equal(64 * 256, await balloon.GetActualPagesAsync(_timeout.Token));
        GuestMemoryStatistics guest = await balloon.GetGuestStatisticsAsync(_timeout.Token);

        Assert.Equal(new GuestMemoryStatistics(0, 0, 12, 34567, 150000000, 200000000, 160000000, 1000000, null, null), guest);
        Assert.Equal(
            [
                """{"execute":"query-balloon"}""",
                """{"execute":"qom-get","arguments":{"path":"/machine/peripheral/balloon","property":"guest-stats"}}""",
            ],
            peer.Commands.Skip(1));
    }

    [Fact]
    public void Statistics_before_the_guests_first_report_are_empty()
    {
        using JsonDocument answer = JsonDocument.Parse("""{"stats": {"stat-total-memory": -1}, "last-update": 0}""");
        Assert.True(QemuBalloon.ParseGuestStatistics(answer.RootElement, "vm1").IsEmpty);
    }

    [Theory]
    [InlineData("""{"actual": 0}""")]
    [InlineData("""{"actual": -4096}""")]
    [InlineData("""{"actual": 268439552}""")]
    [InlineData("""{"actual": 1e300}""")]
    [InlineData("""{"actual": "268435456"}""")]
    [InlineData("""{}""")]
    [InlineData("""[]""")]
    public void A_remaining_size_outside_the_guest_is_an_error_not_a_wrap(string answer)
    {
        using JsonDocument json = JsonDocument.Parse(answer);
        var e = Assert.Throws<InvalidDataException>(() => QemuBalloon.ParseActualPages(json.RootElement, "vm1", GuestMib));
        Assert.Contains("vm1", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"stats": {"stat-total-memory": 268435457}, "last-update": 1}""")]
    [InlineData("""{"stats": {"stat-free-memory": -2}, "last-update": 1}""")]
    [InlineData("""{"stats": {"stat-minor-faults": 18446744073709551614}, "last-update": 1}""")]
    [InlineData("""{"stats": {"stat-major-faults": 1.5}, "last-update": 1}""")]
    [InlineData("""{"stats": {"stat-disk-caches": "lots"}, "last-update": 1}""")]
    [InlineData("""{"stats": [], "last-update": 1}""")]
    [InlineData("""{"stats": {}, "last-update": -1}""")]
    [InlineData("""{"stats": {}}""")]
    public async Task A_guest_statistic_that_is_negative_or_larger_than_the_guest_is_an_error(string answer)
    {
        await using var peer = new ScriptedQmpPeer(Path.Combine(_dir, "qmp.sock"), (_, _) => answer);
        await using QmpClient qmp = await QmpClient.ConnectAsync(peer.SocketPath, _timeout.Token);
        var balloon = new QemuBalloon(qmp, "vm1", GuestMib);

        var e = await Assert.ThrowsAsync<InvalidDataException>(() => balloon.GetGuestStatisticsAsync(_timeout.Token));
        Assert.Contains("vm1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Statistics_from_the_vmm_are_checked_against_the_guests_memory()
    {
        Assert.Equal(64, BalloonStatistics.Create("vm1", GuestMib, 64 * 256, 64 * 256, null).ActualMib);
        Assert.Throws<InvalidDataException>(() => BalloonStatistics.Create("vm1", GuestMib, 64 * 256, -1, null));
        Assert.Throws<InvalidDataException>(() => BalloonStatistics.Create("vm1", GuestMib, GuestMib * 256 + 1, 0, null));
        Assert.Throws<InvalidDataException>(() => BalloonStatistics.Create("vm1", GuestMib, 0, 0,
            GuestMemoryStatistics.Empty with { AvailableMemory = GuestBytes + 1 }));
    }

    [Fact]
    public async Task A_real_qemu_accepts_every_balloon_command()
    {
        string socket = Path.Combine(_dir, "qmp.sock");
        var info = new ProcessStartInfo(QemuBinary.Require()) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in new[]
                 {
                     "-M", "pc", "-S", "-nodefaults", "-display", "none", "-m", $"{GuestMib}M",
                     "-device", "virtio-balloon-pci,id=balloon", "-qmp", $"unix:{socket},server=on,wait=off",
                 })
        {
            info.ArgumentList.Add(arg);
        }

        using Process qemu = Process.Start(info)!;
        try
        {
            await using QmpClient qmp = await ConnectWhenReadyAsync(socket, qemu);
            var balloon = new QemuBalloon(qmp, "vm1", GuestMib);

            await balloon.SetStatisticsIntervalAsync(2, _timeout.Token);
            await balloon.SetTargetAsync(64, _timeout.Token);
            JsonElement interval = await qmp.ExecuteAsync("qom-get", w =>
            {
                w.WriteString("path", QemuBalloon.DevicePath);
                w.WriteString("property", "guest-stats-polling-interval");
            }, _timeout.Token);

            Assert.Equal(2, interval.GetInt64());
            Assert.Equal(0, await balloon.GetActualPagesAsync(_timeout.Token)); // the guest never ran, so it gave nothing
            Assert.True((await balloon.GetGuestStatisticsAsync(_timeout.Token)).IsEmpty);
        }
        finally
        {
            QmpClientTests.KillQuietly(qemu);
        }
    }

    private async Task<QmpClient> ConnectWhenReadyAsync(string socket, Process qemu)
    {
        while (true)
        {
            Assert.False(qemu.HasExited, $"QEMU exited with {(qemu.HasExited ? qemu.ExitCode : 0)}: {(qemu.HasExited ? await qemu.StandardError.ReadToEndAsync() : "")}");
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

    /// <summary>A QMP peer on a real Unix socket that records every command line and answers with a scripted "return" value.</summary>
    private sealed class ScriptedQmpPeer : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly CancellationTokenSource _stop = new();
        private readonly List<string> _commands = [];
        private readonly Func<string, JsonElement, string> _answer;
        private readonly Task _serve;

        public ScriptedQmpPeer(string socketPath, Func<string, JsonElement, string> answer)
        {
            SocketPath = socketPath;
            _answer = answer;
            _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            _listener.Listen(1);
            _serve = Task.Run(ServeAsync);
        }

        public string SocketPath { get; }

        /// <summary>Each command as sent, without its id.</summary>
        public IReadOnlyList<string> Commands
        {
            get
            {
                lock (_commands)
                {
                    return [.. _commands];
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Dispose();
            await _serve.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _stop.Dispose();
        }

        private async Task ServeAsync()
        {
            using Socket peer = await _listener.AcceptAsync(_stop.Token);
            await using var stream = new NetworkStream(peer);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            await stream.WriteAsync("{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n"u8.ToArray(), _stop.Token);
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                using JsonDocument command = JsonDocument.Parse(line);
                string name = command.RootElement.GetProperty("execute").GetString()!;
                long id = command.RootElement.GetProperty("id").GetInt64();
                JsonElement arguments = command.RootElement.TryGetProperty("arguments", out JsonElement a) ? a : default;
                lock (_commands)
                {
                    _commands.Add(WithoutId(command.RootElement));
                }

                string value = name == "qmp_capabilities" ? "{}" : _answer(name, arguments).ReplaceLineEndings(" "); // QMP is one line per message
                await stream.WriteAsync(Encoding.UTF8.GetBytes($"{{\"return\": {value}, \"id\": {id}}}\n"), _stop.Token);
            }
        }

        private static string WithoutId(JsonElement command)
        {
            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                foreach (JsonProperty property in command.EnumerateObject().Where(p => p.Name != "id"))
                {
                    property.WriteTo(writer);
                }

                writer.WriteEndObject();
            }

            return Encoding.UTF8.GetString(buffer.ToArray());
        }
    }
}
