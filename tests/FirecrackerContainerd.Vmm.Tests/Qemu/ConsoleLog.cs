using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>A logger that keeps every line and lets a test wait for one containing a text.</summary>
internal sealed class ConsoleLog : ILogger
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentBag<(string Text, TaskCompletionSource<string> Seen)> _waiters = [];

    public IReadOnlyCollection<string> Lines => _lines;

    public Task<string> WaitForAsync(string text, CancellationToken cancellationToken)
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiters.Add((text, seen));
        foreach (string line in _lines)
        {
            if (line.Contains(text, StringComparison.Ordinal))
            {
                seen.TrySetResult(line);
            }
        }

        return seen.Task.WaitAsync(cancellationToken);
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        string line = formatter(state, exception);
        _lines.Enqueue(line);
        foreach (var (text, seen) in _waiters)
        {
            if (line.Contains(text, StringComparison.Ordinal))
            {
                seen.TrySetResult(line);
            }
        }
    }

    public override string ToString() => string.Join('\n', _lines);
}
