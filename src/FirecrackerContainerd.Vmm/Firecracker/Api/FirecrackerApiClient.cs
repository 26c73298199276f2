using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Vmm.Firecracker.Api;

/// <summary>HTTP/1.1 client for Firecracker's API over its Unix socket; one method per endpoint the driver uses.</summary>
/// <remarks>
/// Bodies are sent with Content-Length and exactly <c>application/json</c> (no charset, no chunking),
/// which is what Firecracker's small HTTP server understands. Status codes are checked exactly:
/// 204 for PUT/PATCH, 200 for GET; anything else becomes a <see cref="FirecrackerApiException"/>.
/// </remarks>
public sealed class FirecrackerApiClient : IDisposable
{
    /// <summary>Error bodies are read up to this size; Firecracker's fault messages are a line or two.</summary>
    private const int MaxErrorBodyBytes = 8192;

    /// <summary>GET answers are read up to this size; the biggest, <c>/vm/config</c> or <c>/mmds</c>, stays far below.</summary>
    private const int MaxResponseBodyBytes = 1 << 20;

    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json");

    private readonly HttpClient _http;
    private readonly TimeSpan _requestTimeout;

    /// <summary>Creates a client for the API socket at <paramref name="socketPath"/> of machine <paramref name="vmId"/>.</summary>
    /// <param name="vmId">Machine id, named in every error.</param>
    /// <param name="socketPath">Path of the API socket, of any length (see <see cref="UnixSocketPath.ForExistingSocket"/>).</param>
    /// <param name="requestTimeout">Bound on each request, on top of the caller's cancellation.</param>
    public FirecrackerApiClient(string vmId, string socketPath, TimeSpan requestTimeout)
    {
        VmId = vmId;
        SocketPath = socketPath;
        _requestTimeout = requestTimeout;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    // Jailed, the socket lies in the jail root, which Firecracker's own user owns: a link put in its place
                    // to another host socket is refused, not followed.
                    using UnixSocketPath target = UnixSocketPath.ForExistingSocket(socketPath);
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(target.ConnectPath), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            UseProxy = false,
            AllowAutoRedirect = false,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        };
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://localhost/"), Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>The machine this client talks about.</summary>
    public string VmId { get; }

    /// <summary>The API socket path as given.</summary>
    public string SocketPath { get; }

    /// <summary><c>PUT /logger</c>.</summary>
    internal Task PutLoggerAsync(ApiLogger body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/logger", body, FirecrackerJsonContext.Default.ApiLogger, ct);

    /// <summary><c>PUT /metrics</c>.</summary>
    internal Task PutMetricsAsync(ApiMetrics body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/metrics", body, FirecrackerJsonContext.Default.ApiMetrics, ct);

    /// <summary><c>PUT /machine-config</c>.</summary>
    internal Task PutMachineConfigAsync(ApiMachineConfiguration body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/machine-config", body, FirecrackerJsonContext.Default.ApiMachineConfiguration, ct);

    /// <summary><c>GET /machine-config</c>; also the readiness probe, as the Go SDK does.</summary>
    internal Task<ApiMachineConfiguration> GetMachineConfigAsync(CancellationToken ct) =>
        GetAsync("/machine-config", FirecrackerJsonContext.Default.ApiMachineConfiguration, ct);

    /// <summary><c>PUT /boot-source</c>.</summary>
    internal Task PutBootSourceAsync(ApiBootSource body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/boot-source", body, FirecrackerJsonContext.Default.ApiBootSource, ct);

    /// <summary><c>PUT /drives/{drive_id}</c>.</summary>
    internal Task PutDriveAsync(ApiDrive body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/drives/" + PathId(body.DriveId), body, FirecrackerJsonContext.Default.ApiDrive, ct);

    /// <summary><c>PATCH /drives/{drive_id}</c>: swap the backing file of a running machine's drive.</summary>
    internal Task PatchDriveAsync(ApiPartialDrive body, CancellationToken ct) =>
        SendAsync(HttpMethod.Patch, "/drives/" + PathId(body.DriveId), body, FirecrackerJsonContext.Default.ApiPartialDrive, ct);

    /// <summary><c>PUT /network-interfaces/{iface_id}</c>.</summary>
    internal Task PutNetworkInterfaceAsync(ApiNetworkInterface body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/network-interfaces/" + PathId(body.IfaceId), body, FirecrackerJsonContext.Default.ApiNetworkInterface, ct);

    /// <summary><c>PUT /vsock</c>.</summary>
    internal Task PutVsockAsync(ApiVsock body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/vsock", body, FirecrackerJsonContext.Default.ApiVsock, ct);

    /// <summary><c>PUT /balloon</c>.</summary>
    internal Task PutBalloonAsync(ApiBalloon body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/balloon", body, FirecrackerJsonContext.Default.ApiBalloon, ct);

    /// <summary><c>PATCH /balloon</c>.</summary>
    internal Task PatchBalloonAsync(ApiBalloonUpdate body, CancellationToken ct) =>
        SendAsync(HttpMethod.Patch, "/balloon", body, FirecrackerJsonContext.Default.ApiBalloonUpdate, ct);

    /// <summary><c>GET /balloon</c>: the balloon's current settings.</summary>
    internal Task<ApiBalloon> GetBalloonAsync(CancellationToken ct) =>
        GetAsync("/balloon", FirecrackerJsonContext.Default.ApiBalloon, ct);

    /// <summary><c>GET /balloon/statistics</c>: fails unless statistics were enabled before boot.</summary>
    internal Task<ApiBalloonStats> GetBalloonStatsAsync(CancellationToken ct) =>
        GetAsync("/balloon/statistics", FirecrackerJsonContext.Default.ApiBalloonStats, ct);

    /// <summary><c>PATCH /balloon/statistics</c>: a new statistics interval.</summary>
    internal Task PatchBalloonStatsAsync(ApiBalloonStatsUpdate body, CancellationToken ct) =>
        SendAsync(HttpMethod.Patch, "/balloon/statistics", body, FirecrackerJsonContext.Default.ApiBalloonStatsUpdate, ct);

    /// <summary><c>PUT /mmds/config</c>.</summary>
    internal Task PutMmdsConfigAsync(ApiMmdsConfig body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/mmds/config", body, FirecrackerJsonContext.Default.ApiMmdsConfig, ct);

    /// <summary><c>PUT /mmds</c>: replace the metadata store.</summary>
    internal Task PutMmdsAsync(JsonElement body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/mmds", body, FirecrackerJsonContext.Default.JsonElement, ct);

    /// <summary><c>PATCH /mmds</c>: merge into the metadata store.</summary>
    internal Task PatchMmdsAsync(JsonElement body, CancellationToken ct) =>
        SendAsync(HttpMethod.Patch, "/mmds", body, FirecrackerJsonContext.Default.JsonElement, ct);

    /// <summary><c>PUT /actions</c>.</summary>
    internal Task PutActionAsync(ActionType action, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/actions", new InstanceActionInfo(action), FirecrackerJsonContext.Default.InstanceActionInfo, ct);

    /// <summary><c>PATCH /vm</c>: pause or resume.</summary>
    internal Task PatchVmAsync(ApiVm body, CancellationToken ct) =>
        SendAsync(HttpMethod.Patch, "/vm", body, FirecrackerJsonContext.Default.ApiVm, ct);

    /// <summary><c>PUT /snapshot/create</c>.</summary>
    internal Task PutSnapshotCreateAsync(ApiSnapshotCreateParams body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/snapshot/create", body, FirecrackerJsonContext.Default.ApiSnapshotCreateParams, ct);

    /// <summary><c>PUT /snapshot/load</c>.</summary>
    internal Task PutSnapshotLoadAsync(ApiSnapshotLoadParams body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "/snapshot/load", body, FirecrackerJsonContext.Default.ApiSnapshotLoadParams, ct);

    /// <summary><c>GET /</c>: instance id, state and version.</summary>
    internal Task<ApiInstanceInfo> DescribeInstanceAsync(CancellationToken ct) =>
        GetAsync("/", FirecrackerJsonContext.Default.ApiInstanceInfo, ct);

    /// <inheritdoc/>
    public void Dispose()
    {
        _http.Dispose();
    }

    /// <summary>Firecracker accepts only letters, digits and '_' in path ids; anything else is refused before it is sent.</summary>
    private string PathId(string id) =>
        Machine.MachineSpecValidator.ResourceIdPattern().IsMatch(id)
            ? id
            : throw new ArgumentException($"resource id \"{id}\" for vm \"{VmId}\" may hold only letters, digits and '_'", nameof(id));

    private async Task SendAsync<T>(HttpMethod method, string path, T body, JsonTypeInfo<T> typeInfo, CancellationToken ct)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(body, typeInfo);
        using var content = new ByteArrayContent(json);
        content.Headers.ContentType = JsonMediaType;
        using var request = new HttpRequestMessage(method, path) { Content = content };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_requestTimeout);
        using var response = await SendOrExplainAsync(request, method, path, timeout, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.NoContent)
        {
            throw await FaultAsync(method, path, response, timeout.Token).ConfigureAwait(false);
        }
    }

    private async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> typeInfo, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_requestTimeout);
        using var response = await SendOrExplainAsync(request, HttpMethod.Get, path, timeout, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw await FaultAsync(HttpMethod.Get, path, response, timeout.Token).ConfigureAwait(false);
        }

        var bytes = await ReadBoundedAsync(response, MaxResponseBodyBytes, timeout.Token).ConfigureAwait(false);
        try
        {
            return JsonSerializer.Deserialize(bytes, typeInfo)
                ?? throw new InvalidDataException($"firecracker API GET {path} for vm \"{VmId}\" answered null");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"firecracker API GET {path} for vm \"{VmId}\" answered malformed JSON: {e.Message}", e);
        }
    }

    private async Task<HttpResponseMessage> SendOrExplainAsync(
        HttpRequestMessage request, HttpMethod method, string path, CancellationTokenSource timeout, CancellationToken callerToken)
    {
        try
        {
            return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !callerToken.IsCancellationRequested)
        {
            throw new TimeoutException(
                $"firecracker API {method} {path} for vm \"{VmId}\" got no answer within {_requestTimeout.TotalMilliseconds} ms on {SocketPath}");
        }
        catch (HttpRequestException e)
        {
            throw new IOException($"firecracker API {method} {path} for vm \"{VmId}\" on {SocketPath}: {e.Message}", e);
        }
    }

    private async Task<FirecrackerApiException> FaultAsync(HttpMethod method, string path, HttpResponseMessage response, CancellationToken ct)
    {
        var bytes = await ReadBoundedAsync(response, MaxErrorBodyBytes, ct).ConfigureAwait(false);
        string fault;
        try
        {
            fault = JsonSerializer.Deserialize(bytes, FirecrackerJsonContext.Default.ApiError)?.FaultMessage
                ?? Encoding.UTF8.GetString(bytes);
        }
        catch (JsonException)
        {
            fault = Encoding.UTF8.GetString(bytes);
        }

        return new FirecrackerApiException(VmId, method.Method, path, response.StatusCode, fault);
    }

    private static async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, int limit, CancellationToken ct)
    {
        var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var buffer = new MemoryStream();
            var chunk = new byte[4096];
            int n;
            while ((n = await stream.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + n > limit)
                {
                    throw new InvalidDataException($"firecracker API answer is larger than {limit} bytes");
                }

                buffer.Write(chunk, 0, n);
            }

            return buffer.ToArray();
        }
    }
}
