using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Runtime.Tracing;

/// <summary>
/// How long each phase of a VM's boot and of a container's life took, logged at information level as
/// <c>trace &lt;subject&gt;: &lt;phase&gt; &lt;ms&gt; ms</c> when the runtime configuration's <c>trace</c> is on
/// (docs/operations.md); off, a phase costs one branch. <c>scripts/bench e2e</c> turns it on and prints the medians.
/// </summary>
internal sealed partial class PhaseTrace
{
    /// <summary>The trace that logs nothing.</summary>
    public static readonly PhaseTrace Off = new(NullLogger.Instance, enabled: false);

    private readonly ILogger _logger;

    /// <summary>A trace into <paramref name="logger"/>, logging only when <paramref name="enabled"/>.</summary>
    public PhaseTrace(ILogger logger, bool enabled)
    {
        _logger = logger;
        Enabled = enabled;
    }

    /// <summary>Whether phases are logged.</summary>
    public bool Enabled { get; }

    /// <summary>A point in time to measure a phase from (<see cref="Stopwatch.GetTimestamp"/>).</summary>
    public static long Now() => Stopwatch.GetTimestamp();

    /// <summary>Logs that <paramref name="phase"/> of <paramref name="subject"/> took from <paramref name="since"/> until now.</summary>
    public void Phase(string subject, string phase, long since)
    {
        if (Enabled)
        {
            double milliseconds = Stopwatch.GetElapsedTime(since).TotalMilliseconds;
            LogPhase(_logger, subject, phase, milliseconds);
        }
    }

    /// <summary>Logs a phase measured elsewhere (the guest's own clock, for one), in milliseconds.</summary>
    public void Measured(string subject, string phase, double milliseconds)
    {
        if (Enabled)
        {
            LogPhase(_logger, subject, phase, milliseconds);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "trace {Subject}: {Phase} {Milliseconds:0.0} ms")]
    private static partial void LogPhase(ILogger logger, string subject, string phase, double milliseconds);
}
