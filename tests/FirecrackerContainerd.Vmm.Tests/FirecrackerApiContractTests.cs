using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using FirecrackerContainerd.Vmm.Firecracker;
using FirecrackerContainerd.Vmm.Firecracker.Api;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Tests.Contract;

namespace FirecrackerContainerd.Vmm.Tests;

/// <summary>The driver's HTTP client against a server on a real Unix socket that checks every request against firecracker-api.yaml.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public sealed class FirecrackerApiContractTests : IAsyncLifetime
{
    private static readonly SwaggerContract Contract = SwaggerContract.LoadDefault();
    private readonly TempDir _dir = new();
    private FirecrackerApiServer _server = null!;
    private FirecrackerApiClient _client = null!;

    public Task InitializeAsync()
    {
        _server = new FirecrackerApiServer(_dir.Combine("firecracker.sock"), Contract, _dir.Path);
        _client = new FirecrackerApiClient("vm1", _server.SocketPath, TimeSpan.FromSeconds(10));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task A_link_put_in_place_of_the_api_socket_is_refused_not_followed()
    {
        // A jailed Firecracker owns the directory of its API socket: what it puts there must be a socket.
        string link = _dir.Combine("linked.sock");
        File.CreateSymbolicLink(link, _server.SocketPath);
        using var client = new FirecrackerApiClient("vm1", link, TimeSpan.FromSeconds(10));

        var e = await Assert.ThrowsAsync<IOException>(() => client.GetMachineConfigAsync(default));

        Assert.Contains("symbolic link", e.Message, StringComparison.Ordinal);
        Assert.NotNull(await _client.GetMachineConfigAsync(default));
    }

    [Fact]
    public async Task Boot_sequence_conforms_to_the_API_description_in_the_go_sdk_order()
    {
        var spec = TestSpecs.Full(_dir);
        await _client.PutLoggerAsync(new ApiLogger("fc-logs.fifo", FirecrackerLogLevel.Debug, true, false), default);
        await _client.PutMetricsAsync(new ApiMetrics("fc-metrics.fifo"), default);
        await FirecrackerMachine.ConfigureAsync(_client, spec, default);
        await _client.PutActionAsync(ActionType.InstanceStart, default);

        Assert.Empty(_server.Violations);
        Assert.Equal(
            [
                "PUT /logger", "PUT /metrics", "PUT /machine-config", "PUT /boot-source",
                "PUT /drives/root", "PUT /drives/stub0", "PUT /drives/stub1", "PUT /network-interfaces/eth0",
                "PUT /vsock", "PUT /balloon", "PUT /mmds/config", "PUT /mmds", "PUT /actions",
            ],
            _server.Requests.Select(r => $"{r.Method} {r.Path}"));
        Assert.All(_server.Requests, r => Assert.Equal(204, r.Status));
        Assert.Equal("Running", _server.State);
        var root = JsonDocument.Parse(_server.Requests.Single(r => r.Path == "/drives/root").Body!).RootElement;
        Assert.True(root.GetProperty("is_root_device").GetBoolean());
        Assert.True(root.GetProperty("is_read_only").GetBoolean());
        Assert.Equal(spec.Drives[0].HostPath, root.GetProperty("path_on_host").GetString());
        var boot = JsonDocument.Parse(_server.Requests.Single(r => r.Path == "/boot-source").Body!).RootElement;
        Assert.Equal(
            "console=ttyS0 pci=off i8042.noaux i8042.nomux i8042.dumbkbd i8042.nopnp random.trust_cpu=on " + spec.Boot.KernelArgs,
            boot.GetProperty("boot_args").GetString());
        var vsock = JsonDocument.Parse(_server.Requests.Single(r => r.Path == "/vsock").Body!).RootElement;
        Assert.Equal(3, vsock.GetProperty("guest_cid").GetInt32());
        Assert.Equal("firecracker.vsock", vsock.GetProperty("uds_path").GetString());
    }

    [Fact]
    public async Task Drive_patch_pause_snapshot_resume_and_metadata_sequences_conform()
    {
        await FirecrackerMachine.ConfigureAsync(_client, TestSpecs.Full(_dir), default);
        await _client.PutActionAsync(ActionType.InstanceStart, default);

        await _client.PatchDriveAsync(new ApiPartialDrive("stub0", _dir.File("container.ext4")), default);
        await _client.PatchVmAsync(new ApiVm(ApiVmState.Paused), default);
        Assert.Equal("Paused", (await _client.DescribeInstanceAsync(default)).State);
        await _client.PutSnapshotCreateAsync(new ApiSnapshotCreateParams(_dir.Combine("snap"), _dir.Combine("mem"), "Full"), default);
        await _client.PatchVmAsync(new ApiVm(ApiVmState.Resumed), default);
        await _client.PatchBalloonAsync(new ApiBalloonUpdate(32), default);
        await _client.PutMmdsAsync(JsonDocument.Parse("""{"a":1}""").RootElement, default);
        await _client.PatchMmdsAsync(JsonDocument.Parse("""{"b":{"c":"d"}}""").RootElement, default);
        await _client.PutActionAsync(ActionType.FlushMetrics, default);
        await _client.PutActionAsync(ActionType.SendCtrlAltDel, default);
        var info = await _client.DescribeInstanceAsync(default);

        Assert.Empty(_server.Violations);
        Assert.Equal("Running", info.State);
        Assert.Equal("Firecracker", info.AppName);
    }

    [Fact]
    public async Task Balloon_config_statistics_and_interval_calls_conform_and_follow_firecrackers_rules()
    {
        await FirecrackerMachine.ConfigureAsync(_client, TestSpecs.Full(_dir), default);
        await _client.PutActionAsync(ActionType.InstanceStart, default);

        await _client.PatchBalloonAsync(new ApiBalloonUpdate(32), default);
        Assert.Equal(new BalloonDevice(32, DeflateOnOom: true, StatsPollingIntervalSeconds: 1),
            FirecrackerMachine.ToBalloonDevice("vm1", await _client.GetBalloonAsync(default)));
        BalloonStatistics stats = FirecrackerMachine.ToBalloonStatistics("vm1", 256, await _client.GetBalloonStatsAsync(default));
        await _client.PatchBalloonStatsAsync(new ApiBalloonStatsUpdate(5), default);
        var off = await Assert.ThrowsAsync<FirecrackerApiException>(() => _client.PatchBalloonStatsAsync(new ApiBalloonStatsUpdate(0), default));

        Assert.Equal((32L, 32L * 256, 32L, 32L * 256), (stats.TargetMib, stats.TargetPages, stats.ActualMib, stats.ActualPages));
        Assert.Equal((256L - 32) << 20, stats.Guest!.TotalMemory);
        Assert.Null(stats.Guest.HugetlbAllocations);
        Assert.Contains("statistics after boot", off.Message, StringComparison.Ordinal);
        Assert.Empty(_server.Violations);
        Assert.Equal(
            ["PATCH /balloon 204", "GET /balloon 200", "GET /balloon/statistics 200", "PATCH /balloon/statistics 204", "PATCH /balloon/statistics 400"],
            _server.Requests.SkipWhile(r => r.Path != "/actions").Skip(1).Select(r => $"{r.Method} {r.Path} {r.Status}"));
    }

    [Fact]
    public async Task Balloon_statistics_are_refused_when_they_were_off_at_boot()
    {
        await FirecrackerMachine.ConfigureAsync(_client, TestSpecs.Full(_dir) with { Balloon = new BalloonDevice(0, false) }, default);
        await _client.PutActionAsync(ActionType.InstanceStart, default);

        await Assert.ThrowsAsync<FirecrackerApiException>(() => _client.GetBalloonStatsAsync(default));
        await Assert.ThrowsAsync<FirecrackerApiException>(() => _client.PatchBalloonStatsAsync(new ApiBalloonStatsUpdate(1), default));
        Assert.Empty(_server.Violations);
    }

    [Fact]
    public async Task Free_page_reporting_is_sent_when_asked_for_and_read_back()
    {
        await FirecrackerMachine.ConfigureAsync(_client, TestSpecs.Full(_dir) with { Balloon = new BalloonDevice(0, false, FreePageReporting: true) }, default);
        BalloonDevice reporting = FirecrackerMachine.ToBalloonDevice("vm1", await _client.GetBalloonAsync(default));
        string? body = _server.Requests.Last(r => r.Method == "PUT" && r.Path == "/balloon").Body;

        Assert.Equal(new BalloonDevice(0, false, FreePageReporting: true), reporting);
        Assert.Contains("\"free_page_reporting\":true", body, StringComparison.Ordinal);
        Assert.Empty(_server.Violations);
    }

    [Theory]
    [InlineData(-1, 0, 0, 0, null)]
    [InlineData(256 * 257, 256 * 257, 257, 257, null)]
    [InlineData(256, 256, 2, 1, null)]
    [InlineData(256, 256, 1, 1, 268435457L)]
    [InlineData(256, 256, 1, 1, -5L)]
    public void Balloon_statistics_that_no_guest_could_have_are_an_error(long targetPages, long actualPages, long targetMib, long actualMib, long? totalMemory)
    {
        var stats = new ApiBalloonStats(targetPages, actualPages, targetMib, actualMib, null, null, null, null, null, totalMemory, null, null, null, null);
        var e = Assert.Throws<InvalidDataException>(() => FirecrackerMachine.ToBalloonStatistics("vm1", 256, stats));
        Assert.Contains("vm1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Balloon_answers_beyond_64_bits_or_below_zero_are_errors_not_wraps()
    {
        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(
            """{"target_pages":0,"actual_pages":0,"target_mib":0,"actual_mib":0,"minor_faults":18446744073709551615}""",
            FirecrackerJsonContext.Default.ApiBalloonStats));
        Assert.Throws<InvalidDataException>(() => FirecrackerMachine.ToBalloonDevice("vm1", new ApiBalloon(-1, false, 1)));
        Assert.Throws<InvalidDataException>(() => FirecrackerMachine.ToBalloonDevice("vm1", new ApiBalloon(1, false, -1)));
    }

    [Fact]
    public async Task Snapshot_load_into_a_fresh_process_conforms()
    {
        await _client.PutLoggerAsync(new ApiLogger("fc-logs.fifo", FirecrackerLogLevel.Info, true, false), default);
        await _client.PutSnapshotLoadAsync(
            new ApiSnapshotLoadParams(_dir.Combine("snap"), new ApiMemoryBackend("File", _dir.Combine("mem")), false, true,
                new ApiVsockOverride("firecracker.vsock")),
            default);

        Assert.Empty(_server.Violations);
        Assert.Equal("Running", _server.State);
    }

    [Fact]
    public async Task A_fault_from_firecracker_surfaces_verbatim_with_method_and_endpoint()
    {
        const string Fault = "Drive config error: Unable to open the block device backing file: No such file or directory (os error 2)";
        _server.FailWith("PUT", "/drives/stub1", Fault);

        var e = await Assert.ThrowsAsync<FirecrackerApiException>(() => FirecrackerMachine.ConfigureAsync(_client, TestSpecs.Full(_dir), default));

        Assert.Equal(Fault, e.FaultMessage);
        Assert.Equal("PUT", e.Method);
        Assert.Equal("/drives/stub1", e.Path);
        Assert.Equal(HttpStatusCode.BadRequest, e.StatusCode);
        Assert.Contains("PUT /drives/stub1", e.Message, StringComparison.Ordinal);
        Assert.Contains(Fault, e.Message, StringComparison.Ordinal);
        Assert.Contains("\"vm1\"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_state_error_from_the_server_is_reported_for_patching_a_drive_before_boot()
    {
        var e = await Assert.ThrowsAsync<FirecrackerApiException>(
            () => _client.PatchDriveAsync(new ApiPartialDrive("stub0", "/x"), default));

        Assert.Equal("The requested operation is not supported before starting the microVM.", e.FaultMessage);
        Assert.Equal("PATCH", e.Method);
    }

    [Theory]
    [InlineData("/machine-config", """{"mem_size_mib":128}""", "required property \"vcpu_count\" is missing")]
    [InlineData("/machine-config", """{"vcpu_count":"two","mem_size_mib":128}""", "expected integer")]
    [InlineData("/vsock", """{"guest_cid":3,"uds_path":"v","vsock_name":"x"}""", "unknown property \"vsock_name\"")]
    [InlineData("/actions", """{"action_type":"Halt"}""", "is not one of")]
    public async Task An_invalid_body_is_refused_by_the_server_and_recorded_as_a_violation(string path, string body, string expected)
    {
        using var http = RawClient();
        using var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        using var response = await http.PutAsync(path, content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var fault = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("fault_message").GetString();
        Assert.Contains(expected, fault, StringComparison.Ordinal);
        Assert.Contains(_server.Violations, v => v.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_charset_in_the_content_type_is_a_violation()
    {
        using var http = RawClient();
        using var content = new StringContent("""{"action_type":"InstanceStart"}""", Encoding.UTF8, "application/json");

        using var response = await http.PutAsync("/actions", content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(_server.Violations, v => v.Contains("Content-Type", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_drive_id_that_cannot_appear_in_a_path_is_refused_before_sending()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => _client.PatchDriveAsync(new ApiPartialDrive("../vm", "/x"), default));
        Assert.Empty(_server.Requests);
    }

    private HttpClient RawClient()
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(_server.SocketPath), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        return new HttpClient(handler) { BaseAddress = new Uri("http://localhost/") };
    }
}
