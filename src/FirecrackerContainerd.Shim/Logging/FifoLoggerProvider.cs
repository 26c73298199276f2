using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Shim.Logging;

/// <summary>
/// Writes log lines, logrus text style, to a stream such as the bundle's <c>log</c> FIFO, which containerd copies
/// into its own log. Writing happens on a background task so a slow or absent reader never stalls a caller;
/// lines are dropped when the queue is full or the stream fails.
/// </summary>
public sealed class FifoLoggerProvider : ILoggerProvider, IAsyncDisposable
{
    private const int QueueLength = 4096;
    private readonly Stream _sink;
    private readonly LogLevel _minimum;
    private readonly string _fields;
    private readonly Channel<string> _lines = Channel.CreateBounded<string>(
        new BoundedChannelOptions(QueueLength) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly Task _pump;

    /// <summary>Logs at <paramref name="minimum"/> and above to <paramref name="sink"/>, which the provider then owns.</summary>
    /// <param name="sink">Where lines go.</param>
    /// <param name="minimum">Lowest level written.</param>
    /// <param name="fields">Fields appended to every line, e.g. <c>runtime=aws.firecracker namespace=default</c>.</param>
    public FifoLoggerProvider(Stream sink, LogLevel minimum, string fields)
    {
        ArgumentNullException.ThrowIfNull(sink);
        _sink = sink;
        _minimum = minimum;
        _fields = fields ?? string.Empty;
        _pump = Task.Run(PumpAsync);
    }

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => new LineLogger(this);

    /// <summary>Stops taking lines and closes the sink at once; lines still queued are dropped.</summary>
    public void Dispose()
    {
        _lines.Writer.TryComplete();
        _sink.Dispose();
    }

    /// <summary>Flushes queued lines (briefly) and closes the sink.</summary>
    public async ValueTask DisposeAsync()
    {
        _lines.Writer.TryComplete();
        await Task.WhenAny(_pump, Task.Delay(TimeSpan.FromSeconds(1))).ConfigureAwait(false);
        await _sink.DisposeAsync().ConfigureAwait(false);
    }

    private void Enqueue(LogLevel level, string message, Exception? exception)
    {
        var line = new StringBuilder(128);
        line.Append("time=\"").Append(DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", CultureInfo.InvariantCulture))
            .Append("\" level=").Append(LevelName(level))
            .Append(" msg=").Append(Quote(exception is null ? message : $"{message}: {exception.Message}"));
        if (_fields.Length > 0)
        {
            line.Append(' ').Append(_fields);
        }

        line.Append('\n');
        _lines.Writer.TryWrite(line.ToString());
    }

    private async Task PumpAsync()
    {
        await foreach (string line in _lines.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                await _sink.WriteAsync(Encoding.UTF8.GetBytes(line)).ConfigureAwait(false);
                await _sink.FlushAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // The reader is gone (EPIPE); logging must never take the shim down.
            }
        }
    }

    private static string LevelName(LogLevel level) => level switch
    {
        LogLevel.Trace => "trace",
        LogLevel.Debug => "debug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warning",
        LogLevel.Error => "error",
        _ => "fatal",
    };

    private static string Quote(string text) =>
        "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)
            .Replace("\n", "\\n", StringComparison.Ordinal) + "\"";

    private sealed class LineLogger(FifoLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= provider._minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                provider.Enqueue(logLevel, formatter(state, exception), exception);
            }
        }
    }
}
