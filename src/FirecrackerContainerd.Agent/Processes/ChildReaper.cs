using System.Collections.Concurrent;
using FirecrackerContainerd.Agent.Native;

namespace FirecrackerContainerd.Agent.Processes;

/// <summary>How a process ended.</summary>
/// <param name="Pid">Its pid.</param>
/// <param name="ExitStatus">Its exit code, or 128 + the signal that killed it (as containerd reports).</param>
/// <param name="ExitedAt">When it was reaped.</param>
internal sealed record ProcessExit(int Pid, int ExitStatus, DateTimeOffset ExitedAt);

/// <summary>
/// Reaps every child of the agent, including the containers the OCI runtime leaves behind (the agent is
/// a child subreaper), and hands each exit to whoever waits for that pid. The agent never uses
/// System.Diagnostics.Process, so nothing else calls waitpid.
/// </summary>
internal sealed class ChildReaper : IDisposable
{
    private const string OomScoreAdjPath = "/proc/self/oom_score_adj";

    private readonly ConcurrentDictionary<int, TaskCompletionSource<ProcessExit>> _waiters = new();
    private readonly SemaphoreSlim _childrenMayExist = new(0);
    private readonly Lock _gate = new();

    /// <summary>The agent's own OOM score adjustment when it is protected (below 0), else null.</summary>
    private readonly int? _protectedOomScore;

    public ChildReaper()
    {
        _protectedOomScore = ReadOomScoreAdj() is < 0 and var score ? score : null;
        var thread = new Thread(ReapForever) { IsBackground = true, Name = "reaper" };
        thread.Start();
    }

    /// <summary>Raised for every reaped process, after its waiter completes.</summary>
    public event Action<ProcessExit>? Reaped;

    /// <summary>The exit of <paramref name="pid"/>; works whether it exits before or after this call.</summary>
    public Task<ProcessExit> WaitAsync(int pid) =>
        _waiters.GetOrAdd(pid, _ => new TaskCompletionSource<ProcessExit>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>
    /// Spawns a child and tells the reaper there is something to wait for. A protected agent (the guest's init starts
    /// it at -999, so that the OOM killer takes anything else first) lowers its guard for the moment of the spawn:
    /// a child inherits the value, and the OCI runtime passes it on to every container and exec. They start at the
    /// kernel's default 0 instead; a spec's own oomScoreAdj is the runtime's to apply.
    /// </summary>
    public int Spawn(string[] argv, string[] envp, int stdinFd, int stdoutFd, int stderrFd)
    {
        lock (_gate)
        {
            if (_protectedOomScore is not { } own)
            {
                return SpawnNow(argv, envp, stdinFd, stdoutFd, stderrFd);
            }

            // Neither write can fail for root in the guest; if one does, the spawn still happens, less well placed.
            bool lowered = TryWriteOomScoreAdj(0);
            try
            {
                return SpawnNow(argv, envp, stdinFd, stdoutFd, stderrFd);
            }
            finally
            {
                if (lowered)
                {
                    TryWriteOomScoreAdj(own);
                }
            }
        }
    }

    /// <summary>Forgets an exit nobody will ask for (a process already accounted for).</summary>
    public void Forget(int pid) => _waiters.TryRemove(pid, out _);

    /// <inheritdoc/>
    public void Dispose() => _childrenMayExist.Dispose();

    private int SpawnNow(string[] argv, string[] envp, int stdinFd, int stdoutFd, int stderrFd)
    {
        int pid = Interop.Spawn(argv, envp, stdinFd, stdoutFd, stderrFd);
        _childrenMayExist.Release();
        return pid;
    }

    private static int? ReadOomScoreAdj()
    {
        try
        {
            return int.TryParse(File.ReadAllText(OomScoreAdjPath).Trim(), System.Globalization.CultureInfo.InvariantCulture, out int score) ? score : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool TryWriteOomScoreAdj(int score)
    {
        try
        {
            using var file = new FileStream(OomScoreAdjPath, FileMode.Open, FileAccess.Write);
            file.Write(System.Text.Encoding.ASCII.GetBytes(score.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            AgentTrace.Write($"write {score} to {OomScoreAdjPath}: {e.Message}");
            return false;
        }
    }

    private void ReapForever()
    {
        while (true)
        {
            var (pid, status) = Interop.WaitAny();
            if (pid < 0)
            {
                // No children: sleep until the next spawn (orphans only come from our own children).
                _childrenMayExist.Wait(TimeSpan.FromSeconds(1));
                continue;
            }

            int exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
            var exit = new ProcessExit(pid, exitStatus, DateTimeOffset.UtcNow);
            AgentTrace.Write($"reaped pid {pid}: status {exitStatus}");
            var reaped = new TaskCompletionSource<ProcessExit>(TaskCreationOptions.RunContinuationsAsynchronously);
            reaped.SetResult(exit);

            // A completed entry for this pid is an older process's exit nobody claimed: the pid was reused.
            _waiters.AddOrUpdate(
                pid,
                reaped,
                (_, existing) => existing.Task.IsCompleted ? reaped : existing.TrySetResult(exit) ? existing : existing);
            Reaped?.Invoke(exit);
        }
    }
}
