using System.Globalization;

namespace FirecrackerContainerd.Agent.Cgroups;

/// <summary>
/// Reports each new OOM kill in a container's cgroup once: the <c>oom_kill</c> count of its
/// <c>memory.events</c> is read every second, and once more just before the container's exit is reported
/// (so containerd sees the OOM before the exit it caused).
/// </summary>
internal sealed class OomWatcher : IDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private readonly Dictionary<string, Watched> _watched = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly Action<string> _onOom;
    private readonly Timer _timer;

    /// <param name="onOom">Called with the container id for each new OOM kill (possibly on a timer thread, under the
    /// watcher's lock: it must not block or call back into the watcher).</param>
    public OomWatcher(Action<string> onOom)
    {
        _onOom = onOom;
        _timer = new Timer(_ => CheckAll(), null, Interval, Interval);
    }

    /// <summary>Starts watching <paramref name="cgroupDirectory"/> for container <paramref name="containerId"/>; kills before now do not count.</summary>
    public void Watch(string containerId, string cgroupDirectory)
    {
        lock (_gate)
        {
            _watched[containerId] = new Watched(cgroupDirectory, OomKills(cgroupDirectory));
        }
    }

    /// <summary>
    /// Reads the container's count now and reports a new kill. The report happens under the same lock as the read:
    /// when Check returns, a kill the timer saw has been reported too, so an exit reported after Check comes after it.
    /// </summary>
    public void Check(string containerId)
    {
        lock (_gate)
        {
            if (_watched.TryGetValue(containerId, out Watched? watched) && watched.Advance())
            {
                _onOom(containerId);
            }
        }
    }

    public void Forget(string containerId)
    {
        lock (_gate)
        {
            _watched.Remove(containerId);
        }
    }

    public void Dispose() => _timer.Dispose();

    /// <summary>The <c>oom_kill</c> count in a <c>memory.events</c> text; 0 when absent or malformed.</summary>
    public static long ParseOomKills(string memoryEvents)
    {
        foreach (string line in memoryEvents.Split('\n'))
        {
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 2 && fields[0] == "oom_kill" &&
                long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out long count))
            {
                return count;
            }
        }

        return 0;
    }

    private static long OomKills(string cgroupDirectory) =>
        ParseOomKills(CgroupLocator.ReadOrEmpty(Path.Combine(cgroupDirectory, "memory.events")));

    private void CheckAll()
    {
        string[] ids;
        lock (_gate)
        {
            ids = [.. _watched.Keys];
        }

        foreach (string id in ids)
        {
            Check(id);
        }
    }

    private sealed class Watched(string directory, long seen)
    {
        private long _seen = seen;

        /// <summary>True when the count grew since the last look.</summary>
        public bool Advance()
        {
            long now = OomKills(directory);
            if (now <= _seen)
            {
                return false;
            }

            _seen = now;
            return true;
        }
    }
}
