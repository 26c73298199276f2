using System.Diagnostics;
using System.Globalization;

namespace FirecrackerContainerd.Control.Shims;

/// <summary>
/// A shim process named by pid and by its start time, so that a pid reused by another process after the shim
/// died is never taken for the shim (and never killed).
/// </summary>
/// <param name="ProcessId">The pid.</param>
/// <param name="StartTicks">Field 22 of <c>/proc/&lt;pid&gt;/stat</c>: the start time in clock ticks after boot.</param>
public sealed record ShimProcess(int ProcessId, ulong StartTicks)
{
    /// <summary>The process with <paramref name="pid"/> as it is now.</summary>
    /// <exception cref="IOException">No such process, or its stat file cannot be parsed.</exception>
    public static ShimProcess Find(int pid)
    {
        return ReadStat(pid) is { } stat
            ? new ShimProcess(pid, stat.StartTicks)
            : throw new IOException($"process {pid}: /proc/{pid}/stat not found");
    }

    /// <summary>
    /// True while this very process exists and has not finished exiting. A zombie has exited once it is its only
    /// thread: a killed multithreaded process shows its leader as a zombie while its other threads still exit, and
    /// until the last of them is gone its file descriptors (the shim's listening socket) stay open and accept.
    /// </summary>
    public bool IsRunning => ReadStat(ProcessId) is { } stat && stat.StartTicks == StartTicks
        && !(stat.State is 'Z' or 'X' && stat.Threads <= 1);

    /// <summary>Sends SIGKILL when the process is still this one; a shim's VMM is tied to it and dies too.</summary>
    public void Kill()
    {
        if (ProcessId == Environment.ProcessId || !IsRunning)
        {
            return;
        }

        try
        {
            using var process = Process.GetProcessById(ProcessId);
            process.Kill();
        }
        catch (ArgumentException)
        {
            // Exited meanwhile.
        }
        catch (InvalidOperationException)
        {
            // Exited meanwhile.
        }
    }

    /// <summary>Waits until the process has exited, polling (it is not our child, so there is no wait to block in).</summary>
    /// <returns>False when it still runs after <paramref name="limit"/>.</returns>
    public async Task<bool> WaitForExitAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (IsRunning)
        {
            if (clock.Elapsed >= limit)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(25), cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    private static (char State, long Threads, ulong StartTicks)? ReadStat(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return null;
        }

        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields are counted after the last ')'.
        int close = text.LastIndexOf(')');
        string[] fields = close < 0 ? [] : text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // Fields after the comm, counted from 0: state is 0, num_threads 17, starttime 19.
        if (fields.Length < 20 || fields[0].Length != 1
            || !long.TryParse(fields[17], NumberStyles.None, CultureInfo.InvariantCulture, out long threads)
            || !ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out ulong start))
        {
            throw new IOException($"process {pid}: cannot parse /proc/{pid}/stat");
        }

        return (fields[0][0], threads, start);
    }
}
