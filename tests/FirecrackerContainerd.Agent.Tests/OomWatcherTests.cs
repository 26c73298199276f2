using FirecrackerContainerd.Agent.Cgroups;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>OOM kills read from a fake cgroup's memory.events: each new kill is reported once, old ones never.</summary>
public sealed class OomWatcherTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-oom-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n", 2)]
    [InlineData("oom_kill 17", 17)]
    [InlineData("", 0)]
    [InlineData("oom_kill -1\n", 0)]
    [InlineData("oom_kill lots\n", 0)]
    [InlineData("oom_kill 1 2\n", 0)]
    [InlineData("oom_killer 5\n", 0)]
    public void ParseOomKills_reads_the_oom_kill_line_and_nothing_else(string text, long expected)
    {
        Assert.Equal(expected, OomWatcher.ParseOomKills(text));
    }

    [Fact]
    public void A_new_kill_is_reported_once_and_kills_before_watching_never()
    {
        Write(3);
        var reported = new List<string>();
        using var watcher = new OomWatcher(id =>
        {
            lock (reported)
            {
                reported.Add(id);
            }
        });
        watcher.Watch("c1", _dir);
        watcher.Check("c1");
        Assert.Empty(Snapshot(reported));

        Write(4);
        watcher.Check("c1");
        watcher.Check("c1");
        Assert.Equal(["c1"], Snapshot(reported));

        watcher.Forget("c1");
        Write(9);
        watcher.Check("c1");
        Assert.Equal(["c1"], Snapshot(reported));
    }

    [Fact]
    public async Task Check_returns_only_after_a_kill_the_timer_saw_has_been_reported()
    {
        // The exit of a container is reported right after Check: had the timer seen the kill and not yet reported
        // it when Check ran, the exit would overtake the OOM event (seen as /tasks/exit before /tasks/oom).
        Write(0);
        using var timerInReport = new ManualResetEventSlim();
        using var releaseReport = new ManualResetEventSlim();
        int reports = 0;
        using var watcher = new OomWatcher(_ =>
        {
            Interlocked.Increment(ref reports);
            timerInReport.Set();
            releaseReport.Wait(TimeSpan.FromSeconds(30));
        });
        watcher.Watch("c3", _dir);
        Write(1);
        Assert.True(timerInReport.Wait(TimeSpan.FromSeconds(10)), "the timer did not see the kill");

        Task check = Task.Run(() => watcher.Check("c3"));
        await Task.Delay(300);
        Assert.False(check.IsCompleted, "Check returned while the kill it must come after was still being reported");

        releaseReport.Set();
        await check.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, Volatile.Read(ref reports));
    }

    [Fact]
    public void A_cgroup_without_memory_events_reports_nothing()
    {
        var reported = new List<string>();
        using var watcher = new OomWatcher(reported.Add);
        watcher.Watch("c2", Path.Combine(_dir, "missing"));
        watcher.Check("c2");
        Assert.Empty(reported);
    }

    private void Write(int kills) =>
        File.WriteAllText(Path.Combine(_dir, "memory.events"), $"low 0\nhigh 0\nmax 0\noom {kills}\noom_kill {kills}\n");

    private static string[] Snapshot(List<string> reported)
    {
        lock (reported)
        {
            return [.. reported];
        }
    }
}
