using System.Buffers.Binary;
using System.IO.Pipelines;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Control.Grpc;

/// <summary>
/// The daemon's ttrpc method table served as gRPC (HTTP/2 without TLS) on a second Unix socket, for clients
/// that speak gRPC, as upstream's API does through containerd: <c>POST /&lt;service&gt;/&lt;method&gt;</c> with one
/// length-prefixed protobuf message, answered with one message and <c>grpc-status</c> trailers. Unary
/// methods only; compressed messages are refused.
/// </summary>
public sealed partial class GrpcGateway : IAsyncDisposable
{
    /// <summary>The largest request message accepted, as ttrpc's own limit.</summary>
    public const int MaxMessageBytes = 4 << 20;

    private readonly WebApplication _app;
    private readonly string _socketPath;

    private GrpcGateway(WebApplication app, string socketPath)
    {
        _app = app;
        _socketPath = socketPath;
    }

    /// <summary>Binds <paramref name="socketPath"/> (mode 0600, a stale file replaced) and serves <paramref name="registry"/>.</summary>
    public static async Task<GrpcGateway> StartAsync(string socketPath, TtrpcServiceRegistry registry, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(registry);
        Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);
        if (await Shim.Lifecycle.ShimSocket.AnswersAsync(socketPath, cancellationToken).ConfigureAwait(false))
        {
            throw new IOException($"another process serves on {socketPath}");
        }

        File.Delete(socketPath);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socketPath, o => o.Protocols = HttpProtocols.Http2));
        WebApplication app = builder.Build();
        app.MapPost("/{service}/{method}", (HttpContext http, string service, string method) => ServeAsync(http, service, method, registry, logger));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return new GrpcGateway(app, socketPath);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(drain.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        File.Delete(_socketPath);
    }

    private static async Task ServeAsync(HttpContext http, string service, string method, TtrpcServiceRegistry registry, ILogger logger)
    {
        http.Response.ContentType = "application/grpc";
        StatusCode status = StatusCode.OK;
        string message = string.Empty;
        try
        {
            if (http.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) != true)
            {
                throw new TtrpcException(StatusCode.InvalidArgument, $"content type \"{http.Request.ContentType}\" is not application/grpc");
            }

            TtrpcUnaryHandler handler = registry.FindUnary(service, method);
            byte[] payload = await ReadMessageAsync(http.Request.BodyReader, http.RequestAborted).ConfigureAwait(false);
            var metadata = new TtrpcMetadata();
            foreach (var (key, values) in http.Request.Headers)
            {
                if (!key.StartsWith(':') && !key.StartsWith("grpc-", StringComparison.Ordinal) && key is not ("content-type" or "te" or "user-agent"))
                {
                    foreach (string? value in values)
                    {
                        metadata.Add(key, value ?? string.Empty);
                    }
                }
            }

            IMessage answer = await handler(payload, new TtrpcCallContext(service, method, 0, metadata, null, http.RequestAborted)).ConfigureAwait(false);
            byte[] body = answer.ToByteArray();
            byte[] prefix = new byte[5];
            BinaryPrimitives.WriteUInt32BigEndian(prefix.AsSpan(1), (uint)body.Length);
            await http.Response.Body.WriteAsync(prefix, http.RequestAborted).ConfigureAwait(false);
            await http.Response.Body.WriteAsync(body, http.RequestAborted).ConfigureAwait(false);
        }
        catch (TtrpcException e)
        {
            (status, message) = (e.StatusCode, e.Message);
        }
        catch (OperationCanceledException)
        {
            (status, message) = (StatusCode.Canceled, "the call was cancelled");
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            (status, message) = (StatusCode.Internal, e.Message);
            LogFailed(logger, service, method, e.Message);
        }

        http.Response.AppendTrailer("grpc-status", ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (message.Length > 0)
        {
            http.Response.AppendTrailer("grpc-message", Uri.EscapeDataString(message));
        }
    }

    /// <summary>Reads the one length-prefixed message of a unary call; the body must hold nothing after it.</summary>
    private static async Task<byte[]> ReadMessageAsync(PipeReader body, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        await body.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        byte[] data = buffer.GetBuffer();
        int length = (int)buffer.Length;
        if (length < 5)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"the request holds {length} bytes, not a gRPC message");
        }

        if (data[0] != 0)
        {
            throw new TtrpcException(StatusCode.Unimplemented, "compressed messages are not supported");
        }

        uint size = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(1, 4));
        if (size > MaxMessageBytes)
        {
            throw new TtrpcException(StatusCode.ResourceExhausted, $"a message of {size} bytes exceeds {MaxMessageBytes}");
        }

        return size + 5 == length
            ? data.AsSpan(5, (int)size).ToArray()
            : throw new TtrpcException(StatusCode.InvalidArgument, $"the request holds {length - 5} bytes after the prefix, which announces {size}");
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "gRPC {Service}/{Method} failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string service, string method, string reason);
}
