using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.Tests.Fakes;

/// <summary>A logger that keeps each message it is given, formatted, at every level.</summary>
internal sealed class RecordingLogger : ILogger
{
    public ConcurrentQueue<string> Messages { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Messages.Enqueue(formatter(state, exception));
}
