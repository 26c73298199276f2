using System.Globalization;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.VsockDevice;

/// <summary>Writes log lines to standard error, which the process that spawned the device collects.</summary>
internal sealed class StandardErrorLogger(LogLevel minimum) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{DateTime.UtcNow:HH:mm:ss.fff} fc-vhost-vsock {logLevel}: {formatter(state, exception)}{(exception is null ? "" : $" ({exception})")}");
        Console.Error.WriteLine(line);
    }
}
