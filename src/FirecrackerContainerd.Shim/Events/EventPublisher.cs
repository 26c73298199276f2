using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.EventsService;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Shim.Events;

/// <summary>
/// Publishes events to containerd's ttrpc socket with <c>Events/Forward</c>: a complete envelope (non-zero timestamp,
/// namespace, topic, Any with the bare type name) and the <c>containerd-namespace-ttrpc</c> metadata.
/// One connection, reopened when it closes; each event is retried a few times.
/// </summary>
public sealed partial class EventPublisher : IEventPublisher, IAsyncDisposable
{
    /// <summary>The metadata key containerd reads the namespace from on its ttrpc socket.</summary>
    public const string NamespaceMetadataKey = "containerd-namespace-ttrpc";

    private static readonly TimeSpan ForwardTimeout = TimeSpan.FromSeconds(5);
    private const int Attempts = 5;
    private readonly string _socketPath;
    private readonly string _namespace;
    private readonly ILogger _logger;
    private readonly TimeSpan _retryPause;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private TtrpcClient? _client;

    /// <summary>Publishes to the ttrpc socket at <paramref name="socketPath"/> for namespace <paramref name="ns"/>.</summary>
    public EventPublisher(string socketPath, string ns, ILogger? logger = null, TimeSpan? retryPause = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        Identifiers.Validate(ns);
        _socketPath = socketPath;
        _namespace = ns;
        _logger = logger ?? NullLogger.Instance;
        _retryPause = retryPause ?? TimeSpan.FromSeconds(1);
    }

    /// <summary>containerd's ttrpc socket: <c>TTRPC_ADDRESS</c> when containerd set it, else the gRPC address plus ".ttrpc".</summary>
    public static string ResolveSocketPath(string containerdAddress, Func<string, string?>? environment = null)
    {
        environment ??= System.Environment.GetEnvironmentVariable;
        string? fromEnvironment = environment("TTRPC_ADDRESS");
        string address = string.IsNullOrEmpty(fromEnvironment) ? containerdAddress + ".ttrpc" : fromEnvironment;
        return address.StartsWith("unix://", StringComparison.Ordinal) ? address["unix://".Length..] : address;
    }

    /// <summary>Builds the Forward request for one event (exposed so tests can check the envelope).</summary>
    public static ForwardRequest BuildForward(string ns, string topic, IMessage taskEvent, DateTimeOffset when)
    {
        ArgumentNullException.ThrowIfNull(taskEvent);
        ValidateTopic(topic);
        return new ForwardRequest
        {
            Envelope = new Envelope
            {
                Timestamp = Timestamp.FromDateTimeOffset(when),
                Namespace = ns,
                Topic = topic,
                // containerd's typeurl uses the bare full name, without a type.googleapis.com/ prefix.
                Event = new Any { TypeUrl = taskEvent.Descriptor.FullName, Value = taskEvent.ToByteString() },
            },
        };
    }

    /// <inheritdoc/>
    public async Task PublishAsync(string topic, IMessage taskEvent, CancellationToken cancellationToken)
    {
        var request = BuildForward(_namespace, topic, taskEvent, DateTimeOffset.UtcNow);
        var options = new TtrpcCallOptions
        {
            Timeout = ForwardTimeout,
            Metadata = new TtrpcMetadata().Add(NamespaceMetadataKey, _namespace),
        };

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    _client ??= await TtrpcClient.ConnectUnixAsync(_socketPath, cancellationToken, _logger).ConfigureAwait(false);
                    await _client.CallAsync(ServiceNames.Events, "Forward", request, Empty.Parser, options, cancellationToken)
                        .ConfigureAwait(false);
                    return;
                }
                catch (Exception e) when (attempt < Attempts && IsRetryable(e) && !cancellationToken.IsCancellationRequested)
                {
                    LogRetry(_logger, topic, attempt, e.Message);
                    await DropClientAsync().ConfigureAwait(false);
                    await Task.Delay(_retryPause * attempt, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await DropClientAsync().ConfigureAwait(false);
        _lock.Dispose();
    }

    private static bool IsRetryable(Exception e) => e switch
    {
        TtrpcException t => t.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded,
        IOException => true,
        _ => false,
    };

    private async Task DropClientAsync()
    {
        if (_client is { } client)
        {
            _client = null;
            await client.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static void ValidateTopic(string topic)
    {
        ArgumentNullException.ThrowIfNull(topic);
        if (topic.Length < 2 || topic[0] != '/')
        {
            throw new ArgumentException($"event topic {topic} must start with '/' and name something", nameof(topic));
        }

        foreach (string component in topic[1..].Split('/'))
        {
            if (!Identifiers.IsValid(component))
            {
                throw new ArgumentException($"event topic {topic}: component \"{component}\" is not a valid identifier", nameof(topic));
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "publishing {Topic} failed (attempt {Attempt}): {Reason}")]
    private static partial void LogRetry(ILogger logger, string topic, int attempt, string reason);
}
