using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vmm.Tests.Contract;

/// <summary>One request the test server received.</summary>
public sealed record RecordedRequest(string Method, string Path, string? Body, int Status);

/// <summary>
/// A stand-in for Firecracker's API server on a real Unix socket: every request is validated
/// against the published API description, then answered the way Firecracker answers (204 for
/// PUT/PATCH, 200 with JSON for GET, 400 with <c>{"fault_message": ...}</c> on errors), following
/// enough of its state machine (pre-boot only calls, pause/resume, snapshot preconditions) to
/// exercise the driver's sequences.
/// </summary>
public sealed class FirecrackerApiServer : IAsyncDisposable
{
    private const int MaxBodyBytes = 51200;

    private readonly SwaggerContract _contract;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly ConcurrentQueue<string> _violations = new();
    private readonly ConcurrentDictionary<string, string> _faults = new();
    private readonly ConcurrentBag<Task> _connections = [];
    private readonly object _gate = new();
    private readonly string _baseDir;
    private string _state = "Not started";
    private bool _configuredBeyondTelemetry;
    private JsonNode _machineConfig = JsonNode.Parse("""{"vcpu_count":1,"mem_size_mib":128,"smt":false}""")!;
    private JsonNode _mmds = new JsonObject();
    private JsonNode? _balloon;
    private int _logFd = -1;
    private int _metricsFd = -1;

    /// <summary>Listens on <paramref name="socketPath"/>; relative FIFO paths are resolved from <paramref name="baseDir"/>.</summary>
    /// <param name="socketPath">Where to listen.</param>
    /// <param name="contract">The API description requests are checked against.</param>
    /// <param name="baseDir">Directory relative FIFO paths are resolved from (the VMM's working directory).</param>
    /// <param name="requestHandled">Sees every request as it is answered; given here so that not even the first request is missed.</param>
    /// <param name="actionHandled">Sees every action after it is answered.</param>
    public FirecrackerApiServer(
        string socketPath,
        SwaggerContract contract,
        string baseDir,
        Action<RecordedRequest, IReadOnlyList<string>>? requestHandled = null,
        Action<string>? actionHandled = null)
    {
        _contract = contract;
        RequestHandled = requestHandled;
        ActionHandled = actionHandled;
        _baseDir = baseDir;
        SocketPath = socketPath;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        _listener.Listen(16);
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>The socket this server listens on.</summary>
    public string SocketPath { get; }

    /// <summary>Requests in arrival order.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    /// <summary>Every contract violation seen (bad path, bad body, bad headers).</summary>
    public IReadOnlyList<string> Violations => [.. _violations];

    /// <summary>Called for every request once it is answered, and for every violation (as a request with status 0).</summary>
    public Action<RecordedRequest, IReadOnlyList<string>>? RequestHandled { get; }

    /// <summary>Called after an action (e.g. "SendCtrlAltDel") was answered.</summary>
    public Action<string>? ActionHandled { get; }

    /// <summary>The instance state, as GET / reports it.</summary>
    public string State
    {
        get { lock (_gate) { return _state; } }
    }

    /// <summary>Makes every <paramref name="method"/> on <paramref name="path"/> fail with 400 and <paramref name="faultMessage"/>.</summary>
    public void FailWith(string method, string path, string faultMessage) => _faults[method + " " + path] = faultMessage;

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await Task.WhenAll(_connections).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        Libc.CloseQuietly(_logFd);
        Libc.CloseQuietly(_metricsFd);
        File.Delete(SocketPath);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptAsync(_stop.Token);
            _connections.Add(ServeAsync(client));
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        await using var stream = new NetworkStream(client, ownsSocket: false);
        var reader = new HttpRequestReader(stream);
        try
        {
            while (await reader.ReadAsync(MaxBodyBytes, _stop.Token) is { } request)
            {
                var (status, body) = Handle(request);
                await WriteResponseAsync(stream, status, body, _stop.Token);
                if (request.Method == "PUT" && request.Path == "/actions" && status == 204)
                {
                    ActionHandled?.Invoke(JsonNode.Parse(request.Body!)!["action_type"]!.GetValue<string>());
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
        {
            // The client went away or the server is stopping.
        }
    }

    private (int Status, string? Body) Handle(HttpRequest request)
    {
        var problems = new List<string>(request.HeaderProblems);
        problems.AddRange(_contract.Validate(request.Method, request.Path, request.Body));
        (int, string?) answer;
        if (problems.Count > 0)
        {
            foreach (var p in problems)
            {
                _violations.Enqueue(p);
            }

            answer = (400, Fault("contract violation: " + string.Join("; ", problems)));
        }
        else if (_faults.TryGetValue(request.Method + " " + request.Path, out var fault))
        {
            answer = (400, Fault(fault));
        }
        else
        {
            lock (_gate)
            {
                answer = Behave(request.Method, request.Path, request.Body is null ? null : JsonNode.Parse(request.Body));
            }
        }

        var recorded = new RecordedRequest(request.Method, request.Path, request.Body, answer.Item1);
        _requests.Enqueue(recorded);
        RequestHandled?.Invoke(recorded, problems);
        return answer;
    }

    private (int, string?) Behave(string method, string path, JsonNode? body)
    {
        const string NotAfterStart = "The requested operation is not supported after starting the microVM.";
        const string NotBeforeStart = "The requested operation is not supported before starting the microVM.";
        const string NoBalloon = "Invalid request method and/or path: balloon device not configured.";
        var started = _state != "Not started";
        var template = _contract.MatchPath(path);
        switch (method, template)
        {
            case ("GET", "/"):
                return (200, new JsonObject { ["id"] = "anonymous-instance", ["state"] = _state, ["vmm_version"] = "1.17.0-dev", ["app_name"] = "Firecracker" }.ToJsonString());
            case ("GET", "/machine-config"):
                return (200, _machineConfig.ToJsonString());
            case ("GET", "/mmds"):
                return (200, _mmds.ToJsonString());
            case ("PUT", "/logger"):
                if (started) return (400, Fault(NotAfterStart));
                _logFd = OpenFifo(body!["log_path"]?.GetValue<string>());
                WriteLine(_logFd, $"2026-01-01T00:00:00.000000000 [anonymous-instance:main:INFO] Running Firecracker v1.17.0-dev (test server)");
                return (204, null);
            case ("PUT", "/metrics"):
                if (started) return (400, Fault(NotAfterStart));
                _metricsFd = OpenFifo(body!["metrics_path"]!.GetValue<string>());
                return (204, null);
            case ("PUT", "/actions"):
                var action = body!["action_type"]!.GetValue<string>();
                switch (action)
                {
                    case "InstanceStart" when started:
                        return (400, Fault("Start microvm error: The microVM is already running."));
                    case "InstanceStart":
                        _state = "Running";
                        return (204, null);
                    case "FlushMetrics" or "SendCtrlAltDel" when !started:
                        return (400, Fault(NotBeforeStart));
                    case "FlushMetrics":
                        WriteLine(_metricsFd, "{\"utc_timestamp_ms\":" + DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + ",\"api_server\":{\"process_startup_time_us\":1234},\"vmm\":{\"panic_count\":0}}");
                        return (204, null);
                    default:
                        return (204, null);
                }

            case ("PATCH", "/vm"):
                if (!started) return (400, Fault(NotBeforeStart));
                _state = body!["state"]!.GetValue<string>() == "Paused" ? "Paused" : "Running";
                return (204, null);
            case ("PUT", "/snapshot/create"):
                if (_state != "Paused") return (400, Fault("Create snapshot error: the microVM must be paused"));
                return (204, null);
            case ("PUT", "/snapshot/load"):
                if (started || _configuredBeyondTelemetry) return (400, Fault("Load snapshot error: the microVM is already configured"));
                _state = body!["resume_vm"]?.GetValue<bool>() == true ? "Running" : "Paused";
                return (204, null);
            case ("PATCH", "/drives/{drive_id}"):
                if (!started) return (400, Fault(NotBeforeStart));
                return IdMatches(path, body!["drive_id"]) ? (204, null) : (400, Fault("The id from the path does not match the id from the body!"));
            case ("PUT", "/drives/{drive_id}"):
            case ("PUT", "/network-interfaces/{iface_id}"):
                if (started) return (400, Fault(NotAfterStart));
                _configuredBeyondTelemetry = true;
                return IdMatches(path, body!["drive_id"] ?? body["iface_id"]) ? (204, null) : (400, Fault("The id from the path does not match the id from the body!"));
            case ("PUT", "/mmds"):
                _mmds = body!;
                return (204, null);
            case ("PATCH", "/mmds"):
                foreach (var (key, value) in body!.AsObject().ToList())
                {
                    _mmds[key] = value?.DeepClone();
                }

                return (204, null);
            case ("PUT", "/balloon"):
                if (started) return (400, Fault(NotAfterStart));
                _balloon = body!;
                return (204, null);
            case ("GET", "/balloon"):
                return _balloon is null ? (400, Fault(NoBalloon)) : (200, _balloon.ToJsonString());
            case ("PATCH", "/balloon"):
                if (_balloon is null) return (400, Fault(NoBalloon));
                _balloon["amount_mib"] = body!["amount_mib"]!.GetValue<int>();
                return (204, null);
            case ("GET", "/balloon/statistics"):
                if (_balloon is null) return (400, Fault(NoBalloon));
                if (_balloon["stats_polling_interval_s"]?.GetValue<int>() is null or 0) return (400, Fault("Statistics for the balloon device are not enabled"));
                return (200, BalloonStats(_balloon["amount_mib"]!.GetValue<int>()));
            case ("PATCH", "/balloon/statistics"):
                if (_balloon is null) return (400, Fault(NoBalloon));
                var interval = body!["stats_polling_interval_s"]!.GetValue<int>();
                if (started && (_balloon["stats_polling_interval_s"]?.GetValue<int>() is null or 0) != (interval == 0))
                {
                    return (400, Fault("Cannot enable/disable the statistics after boot."));
                }

                _balloon["stats_polling_interval_s"] = interval;
                return (204, null);
            case ("PUT", "/machine-config"):
                if (started) return (400, Fault(NotAfterStart));
                _machineConfig = body!;
                _configuredBeyondTelemetry = true;
                return (204, null);
            case ("PUT", _):
                if (started) return (400, Fault(NotAfterStart));
                _configuredBeyondTelemetry = true;
                return (204, null);
            default:
                return (400, Fault($"Invalid request method and/or path: {method} {path}."));
        }
    }

    // The guest gives at once what it is asked; its figures are those of a small, quiet guest.
    private string BalloonStats(int amountMib)
    {
        var memBytes = _machineConfig["mem_size_mib"]!.GetValue<long>() << 20;
        return new JsonObject
        {
            ["target_pages"] = amountMib * 256,
            ["actual_pages"] = amountMib * 256,
            ["target_mib"] = amountMib,
            ["actual_mib"] = amountMib,
            ["swap_in"] = 0,
            ["swap_out"] = 0,
            ["major_faults"] = 3,
            ["minor_faults"] = 4000,
            ["free_memory"] = memBytes / 2,
            ["total_memory"] = memBytes - ((long)amountMib << 20),
            ["available_memory"] = memBytes / 2,
            ["disk_caches"] = 4096,
            ["oom_kill"] = 0,
        }.ToJsonString();
    }

    private static bool IdMatches(string path, JsonNode? id) => path.EndsWith("/" + id?.GetValue<string>(), StringComparison.Ordinal);

    private int OpenFifo(string? relativeOrAbsolute)
    {
        if (relativeOrAbsolute is null)
        {
            return -1;
        }

        var path = Path.Combine(_baseDir, relativeOrAbsolute);
        // As Firecracker does: read-write and non-blocking, so the open never waits and a full FIFO drops lines.
        const int O_CREAT = 0x40;
        return FirecrackerContainerd.Vmm.Interop.Open(
            path, Libc.O_RDWR | Libc.O_NONBLOCK | O_CREAT, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    private static void WriteLine(int fd, string line)
    {
        if (fd >= 0)
        {
            _ = FirecrackerContainerd.Vmm.Interop.Write(fd, Encoding.UTF8.GetBytes(line + "\n"), "fifo");
        }
    }

    private static string Fault(string message) => new JsonObject { ["fault_message"] = message }.ToJsonString();

    private static async Task WriteResponseAsync(Stream stream, int status, string? body, CancellationToken ct)
    {
        var head = new StringBuilder();
        head.Append("HTTP/1.1 ").Append(status).Append(" \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n");
        var bytes = body is null ? [] : Encoding.UTF8.GetBytes(body);
        if (body is not null)
        {
            head.Append("Content-Type: application/json\r\nContent-Length: ").Append(bytes.Length).Append("\r\n");
        }

        head.Append("\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), ct);
        await stream.WriteAsync(bytes, ct);
        await stream.FlushAsync(ct);
    }
}
