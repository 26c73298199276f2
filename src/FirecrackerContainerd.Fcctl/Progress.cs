namespace FirecrackerContainerd.Fcctl;

/// <summary>How fcctl shows that a slow call (a VM booting or stopping) is still under way.</summary>
public enum ProgressMode
{
    /// <summary>Nothing (standard error is not a terminal and --progress was not given).</summary>
    Off,

    /// <summary>One line rewritten in place every second: standard error is a terminal.</summary>
    Terminal,

    /// <summary>A line every second (--progress): for logs and scripts that want to see the wait.</summary>
    Lines,
}

/// <summary>Shows the seconds a call has been running on standard error until it completes.</summary>
public static class Progress
{
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Waits for <paramref name="work"/>, writing "<paramref name="what"/> ... N s" to <paramref name="stderr"/> each
    /// second it takes; a call that ends within the first second shows nothing. A terminal line is cleared at the end.
    /// </summary>
    public static async Task WaitAsync(Task work, string what, TextWriter stderr, ProgressMode mode, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        ArgumentNullException.ThrowIfNull(stderr);
        if (mode == ProgressMode.Off)
        {
            await work.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return;
        }

        int seconds = 0;
        while (await Task.WhenAny(work, Task.Delay(Tick, cancellationToken)).ConfigureAwait(false) != work)
        {
            cancellationToken.ThrowIfCancellationRequested();
            seconds++;
            string line = $"{what} ... {seconds} s";
            await (mode == ProgressMode.Terminal ? stderr.WriteAsync("\r" + line) : stderr.WriteLineAsync(line)).ConfigureAwait(false);
            await stderr.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        if (mode == ProgressMode.Terminal && seconds > 0)
        {
            // Back to the start of the line and clear it, so the answer starts on a clean line.
            await stderr.WriteAsync("\r\u001b[K").ConfigureAwait(false);
        }
    }
}
