using System.Text;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vmm.Firecracker.Telemetry;

/// <summary>Forwards Firecracker's log FIFO (<c>fc-logs.fifo</c>) line by line to an <see cref="ILogger"/>.</summary>
/// <remarks>
/// With <c>show_level</c> on, Firecracker writes <c>&lt;time&gt; [&lt;id&gt;:&lt;thread&gt;:&lt;LEVEL&gt;...] message</c>;
/// the level inside the first bracket, when present, picks the log level, else Information.
/// </remarks>
internal sealed class FirecrackerLogForwarder : IAsyncDisposable
{
    private readonly FifoLineReader _reader;

    private FirecrackerLogForwarder(FifoLineReader reader) => _reader = reader;

    /// <summary>The underlying reader's counters (lines read, dropped, truncated).</summary>
    public FifoLineReader Reader => _reader;

    /// <summary>Starts draining the FIFO at <paramref name="fifoPath"/> into <paramref name="logger"/>.</summary>
    public static FirecrackerLogForwarder Start(string fifoPath, string vmId, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        return new FirecrackerLogForwarder(FifoLineReader.Start(fifoPath, (line, _) =>
        {
            var text = Encoding.UTF8.GetString(line.Span);
            var level = LevelOf(text);
            if (logger.IsEnabled(level))
            {
#pragma warning disable CA1848, CA2254 // One dynamic-level call site; LoggerMessage needs a fixed level.
                logger.Log(level, "firecracker {VmId}: {Line}", vmId, text);
#pragma warning restore CA1848, CA2254
            }

            return ValueTask.CompletedTask;
        }));
    }

    /// <summary>Maps the level token of a Firecracker log line to a <see cref="LogLevel"/>.</summary>
    public static LogLevel LevelOf(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var open = line.IndexOf('[', StringComparison.Ordinal);
        var close = open < 0 ? -1 : line.IndexOf(']', open);
        if (close < 0)
        {
            return LogLevel.Information;
        }

        foreach (var token in line.AsSpan(open + 1, close - open - 1).ToString().Split(':'))
        {
            switch (token.ToUpperInvariant())
            {
                case "ERROR": return LogLevel.Error;
                case "WARN" or "WARNING": return LogLevel.Warning;
                case "INFO": return LogLevel.Information;
                case "DEBUG": return LogLevel.Debug;
                case "TRACE": return LogLevel.Trace;
            }
        }

        return LogLevel.Information;
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _reader.DisposeAsync();
}
