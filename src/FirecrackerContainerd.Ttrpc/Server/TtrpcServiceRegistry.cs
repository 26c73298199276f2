using Google.Protobuf;

namespace FirecrackerContainerd.Ttrpc.Server;

/// <summary>Handles one unary call: decodes the payload, runs, and returns the answer message.</summary>
public delegate Task<IMessage> TtrpcUnaryHandler(ReadOnlyMemory<byte> payload, TtrpcCallContext context);

/// <summary>Handles one streaming call until it returns; the server then sends the final Response.</summary>
public delegate Task TtrpcStreamHandler(TtrpcStreamCall stream, TtrpcCallContext context);

/// <summary>The method table: (service, method) to handler. Fill it before serving; it is read-only while serving.</summary>
public sealed class TtrpcServiceRegistry
{
    private readonly Dictionary<string, Dictionary<string, TtrpcMethod>> _services = new(StringComparer.Ordinal);

    /// <summary>When set, told when each unary call begins and ends (for diagnosing a peer that stops answering).</summary>
    public Action<string>? Trace { get; init; }

    /// <summary>Registers a unary method working on raw payloads.</summary>
    public TtrpcServiceRegistry AddUnary(string service, string method, TtrpcUnaryHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (Trace is { } trace)
        {
            TtrpcUnaryHandler inner = handler;
            handler = async (payload, context) =>
            {
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                trace($"call {service}/{method}");
                try
                {
                    IMessage answer = await inner(payload, context).ConfigureAwait(false);
                    trace($"done {service}/{method} in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms");
                    return answer;
                }
                catch (Exception e)
                {
                    trace($"fail {service}/{method} in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms: {e.Message}");
                    throw;
                }
            };
        }

        Add(service, method, new TtrpcMethod(handler, null));
        return this;
    }

    /// <summary>Registers a unary method with typed request and response messages.</summary>
    public TtrpcServiceRegistry AddUnary<TRequest, TResponse>(
        string service, string method, MessageParser<TRequest> parser, Func<TRequest, TtrpcCallContext, Task<TResponse>> handler)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage
    {
        ArgumentNullException.ThrowIfNull(parser);
        ArgumentNullException.ThrowIfNull(handler);
        return AddUnary(service, method, async (payload, context) =>
        {
            TRequest request;
            try
            {
                request = parser.ParseFrom(payload.Span);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new TtrpcException(StatusCode.InvalidArgument, $"unmarshal {service}/{method} payload: {e.Message}", e);
            }

            return await handler(request, context).ConfigureAwait(false);
        });
    }

    /// <summary>Registers a streaming method (ttrpc 1.2).</summary>
    public TtrpcServiceRegistry AddStream(string service, string method, TtrpcStreamHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        Add(service, method, new TtrpcMethod(null, handler));
        return this;
    }

    /// <summary>The unary handler of (service, method), for serving the same table over another transport.</summary>
    /// <exception cref="TtrpcException">Unimplemented: no such service or method, or the method streams.</exception>
    public TtrpcUnaryHandler FindUnary(string service, string method) =>
        Lookup(service, method).Unary ?? throw new TtrpcException(StatusCode.Unimplemented, $"method {method} streams; only unary methods are served here");

    internal TtrpcMethod Lookup(string service, string method)
    {
        if (!_services.TryGetValue(service, out var methods))
        {
            throw new TtrpcException(StatusCode.Unimplemented, $"service {service}");
        }

        return methods.TryGetValue(method, out var found)
            ? found
            : throw new TtrpcException(StatusCode.Unimplemented, $"method {method}");
    }

    private void Add(string service, string method, TtrpcMethod entry)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        ArgumentException.ThrowIfNullOrEmpty(method);
        if (!_services.TryGetValue(service, out var methods))
        {
            methods = new Dictionary<string, TtrpcMethod>(StringComparer.Ordinal);
            _services[service] = methods;
        }

        if (!methods.TryAdd(method, entry))
        {
            throw new InvalidOperationException($"ttrpc method {service}/{method} is registered twice");
        }
    }
}

/// <summary>One entry of the method table: exactly one of the two handlers is set.</summary>
internal sealed record TtrpcMethod(TtrpcUnaryHandler? Unary, TtrpcStreamHandler? Stream);
