using FirecrackerContainerd.Agent.Cgroups;
using FirecrackerContainerd.Agent.Events;
using FirecrackerContainerd.Agent.Processes;
using FirecrackerContainerd.Protos.Events;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>
/// Reports each container process's exit as a <c>/tasks/exit</c> event, in the order containerd relies on: after
/// the process's output reached the host (so the host's copy ends before the exit), after the OOM kill that ended
/// it, and under the task service's lock (so a process that exits at once is reported after its start, never before).
/// </summary>
internal sealed class ExitReporter(ChildReaper reaper, OomWatcher oom, EventQueue events, TaskLock taskLock)
{
    /// <summary>How long an exited process's output may wait for the host before its exit is reported anyway.</summary>
    private static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(10);

    /// <summary>Waits in the background for <paramref name="process"/> (started, its pid known) to exit, then reports it.</summary>
    public void Watch(ManagedProcess process)
    {
        _ = Task.Run(async () =>
        {
            ProcessExit exit = await reaper.WaitAsync(process.Pid).ConfigureAwait(false);
            reaper.Forget(process.Pid);
            AgentTrace.Write($"process {process.ContainerId}/{process.ExecId} (pid {process.Pid}) exited with {exit.ExitStatus}");

            await Task.WhenAny(process.Io.OutputDone, Task.Delay(OutputGrace)).ConfigureAwait(false);
            oom.Check(process.ContainerId);

            AgentTrace.Write($"process {process.ContainerId}/{process.ExecId} output done: {process.Io.OutputDone.IsCompleted}");
            using (await taskLock.EnterAsync(CancellationToken.None).ConfigureAwait(false))
            {
                process.SetExited(exit);
                events.Publish("/tasks/exit", new TaskExit
                {
                    ContainerId = process.ContainerId,
                    Id = process.IsInit ? process.ContainerId : process.ExecId,
                    Pid = (uint)exit.Pid,
                    ExitStatus = (uint)exit.ExitStatus,
                    ExitedAt = Timestamp.FromDateTimeOffset(exit.ExitedAt),
                });
            }
        });
    }
}
