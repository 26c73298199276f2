using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vmm.Firecracker.Telemetry;

/// <summary>Drains Firecracker's metrics FIFO (<c>fc-metrics.fifo</c>), keeping the latest sample and counting bad lines.</summary>
/// <remarks>
/// Only the latest sample is kept (Firecracker's counters are cumulative per flush, so older lines
/// add nothing), which bounds memory. A malformed line is counted and logged at Warning once,
/// then at Debug, so a broken writer cannot flood the log.
/// </remarks>
public sealed partial class FirecrackerMetricsReader : IAsyncDisposable
{
    private readonly FifoLineReader _reader;
    private FirecrackerMetrics? _latest;
    private long _samples;
    private long _malformed;

    private FirecrackerMetricsReader(string fifoPath, string vmId, ILogger logger, Action<FirecrackerMetrics>? onSample)
    {
        _reader = FifoLineReader.Start(fifoPath, (line, _) =>
        {
            if (FirecrackerMetrics.TryParse(line.Span, DateTimeOffset.UtcNow, out var metrics, out var error))
            {
                Volatile.Write(ref _latest, metrics);
                Interlocked.Increment(ref _samples);
                onSample?.Invoke(metrics!);
            }
            else if (Interlocked.Increment(ref _malformed) == 1)
            {
                LogMalformedFirst(logger, vmId, fifoPath, error!);
            }
            else
            {
                LogMalformed(logger, vmId, fifoPath, error!);
            }

            return ValueTask.CompletedTask;
        });
    }

    /// <summary>The most recent well-formed sample, or null before the first flush.</summary>
    public FirecrackerMetrics? Latest => Volatile.Read(ref _latest);

    /// <summary>Well-formed lines seen.</summary>
    public long Samples => Interlocked.Read(ref _samples);

    /// <summary>Lines that were not a JSON object.</summary>
    public long MalformedLines => Interlocked.Read(ref _malformed);

    /// <summary>The underlying reader's counters.</summary>
    internal FifoLineReader Reader => _reader;

    /// <summary>Starts draining <paramref name="fifoPath"/>; <paramref name="onSample"/> sees every well-formed sample.</summary>
    public static FirecrackerMetricsReader Start(string fifoPath, string vmId, ILogger logger, Action<FirecrackerMetrics>? onSample = null) =>
        new(fifoPath, vmId, logger, onSample);

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _reader.DisposeAsync();

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: malformed metrics line in {Path}: {Error} (further ones are logged at Debug)")]
    private static partial void LogMalformedFirst(ILogger logger, string vmId, string path, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "vm {VmId}: malformed metrics line in {Path}: {Error}")]
    private static partial void LogMalformed(ILogger logger, string vmId, string path, string error);
}
