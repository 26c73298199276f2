using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Control;

/// <summary>One line per log entry on standard error (a service manager's journal keeps it), level and category first.</summary>
public sealed class StderrLoggerProvider : ILoggerProvider
{
    private readonly Lock _gate = new();

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => new StderrLogger(categoryName, _gate);

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    private sealed class StderrLogger(string category, Lock gate) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            string line = $"{DateTimeOffset.UtcNow:O} {logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception.Message)}";
            lock (gate)
            {
                Console.Error.WriteLine(line);
            }
        }
    }
}
