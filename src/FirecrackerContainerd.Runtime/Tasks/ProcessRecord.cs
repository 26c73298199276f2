using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Vm;
using Google.Protobuf.WellKnownTypes;
using TaskStatus = FirecrackerContainerd.Protos.Containerd.TaskTypes.Status;

namespace FirecrackerContainerd.Runtime.Tasks;

/// <summary>
/// One process of a task (its init or an exec) as this shim saw it: its host-side stdio, the stdio containerd asked
/// for, its state as it changed (created, running, paused), and its exit, known once the guest, or the VMM's death,
/// reports it.
/// </summary>
internal sealed class ProcessRecord
{
    /// <summary>The status of a process killed with SIGKILL (128 + 9): what a process gets when its VM dies under it.</summary>
    public const uint KilledStatus = 137;

    private readonly Lock _gate = new();
    private readonly TaskCompletionSource<WaitResponse> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private uint _pid;
    private TaskStatus _status = TaskStatus.Created;
    private volatile bool _awaited;

    /// <summary>Records a process the agent has just created.</summary>
    /// <param name="containerId">Its task's id.</param>
    /// <param name="id">Its own id: the task's for the init, the exec id for an exec.</param>
    /// <param name="io">Its stdio on the host.</param>
    /// <param name="pid">Its guest pid; an exec has one only once started (0 until then).</param>
    /// <param name="stdio">The stdio containerd asked for: FIFO paths or URIs, and the terminal flag.</param>
    public ProcessRecord(string containerId, string id, HostStdio io, uint pid, (string Stdin, string Stdout, string Stderr, bool Terminal) stdio)
    {
        ContainerId = containerId;
        Id = id;
        Io = io;
        _pid = pid;
        Stdio = stdio;
    }

    /// <summary>Its task's id.</summary>
    public string ContainerId { get; }

    /// <summary>Its own id: the task's for the init, the exec id for an exec.</summary>
    public string Id { get; }

    /// <summary>Its stdio on the host.</summary>
    public HostStdio Io { get; }

    /// <summary>The stdio containerd asked for.</summary>
    public (string Stdin, string Stdout, string Stderr, bool Terminal) Stdio { get; }

    /// <summary>Its guest pid.</summary>
    public uint Pid
    {
        get
        {
            lock (_gate)
            {
                return _pid;
            }
        }
    }

    /// <summary>True once its exit is known.</summary>
    public bool HasExited => _exit.Task.IsCompleted;

    /// <summary>
    /// True once someone has waited for its exit (containerd's Wait): a client that waits for a task deletes it once it
    /// has the exit (ctr run --rm, the CRI plugin), so the shim should still answer that Delete.
    /// </summary>
    public bool IsAwaited => _awaited;

    /// <summary>Completes with its exit, without counting as a wait of containerd's (<see cref="IsAwaited"/>).</summary>
    public Task<WaitResponse> Exit => _exit.Task;

    /// <summary>Its exit, once known.</summary>
    public async Task<WaitResponse> WaitAsync(CancellationToken cancellationToken)
    {
        _awaited = true;
        return await _exit.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Records that the agent started it, with the pid the agent reported.</summary>
    public void Started(uint pid)
    {
        lock (_gate)
        {
            _pid = pid;
            _status = TaskStatus.Running;
        }
    }

    /// <summary>Records a state containerd's Pause or Resume put it in.</summary>
    public void SetStatus(TaskStatus status)
    {
        lock (_gate)
        {
            _status = status;
        }
    }

    /// <summary>Records its exit; false when one was recorded already (the first report wins).</summary>
    public bool TryExit(uint status, Timestamp exitedAt) =>
        _exit.TrySetResult(new WaitResponse { ExitStatus = status, ExitedAt = exitedAt });

    /// <summary>What Delete answers for it when the guest cannot: its recorded exit, or killed (137) now if none is.</summary>
    public DeleteResponse Deleted()
    {
        WaitResponse exit = _exit.Task.IsCompleted ? _exit.Task.Result : new WaitResponse { ExitStatus = KilledStatus };
        return new DeleteResponse { Pid = Pid, ExitStatus = exit.ExitStatus, ExitedAt = exit.ExitedAt };
    }

    /// <summary>Its state for containerd's State call; <paramref name="vmPaused"/> turns a running process into a paused one.</summary>
    public StateResponse State(StateRequest request, string bundle, bool vmPaused)
    {
        lock (_gate)
        {
            var state = new StateResponse
            {
                Id = request.Id,
                ExecId = request.ExecId,
                Bundle = bundle,
                Pid = _pid,
                Status = _status,
                Stdin = Stdio.Stdin,
                Stdout = Stdio.Stdout,
                Stderr = Stdio.Stderr,
                Terminal = Stdio.Terminal,
            };
            if (_exit.Task.IsCompletedSuccessfully)
            {
                WaitResponse exit = _exit.Task.Result;
                state.Status = TaskStatus.Stopped;
                state.ExitStatus = exit.ExitStatus;
                state.ExitedAt = exit.ExitedAt;
            }
            else if (vmPaused && state.Status == TaskStatus.Running)
            {
                // The whole VM is frozen, and every process in it with the VM.
                state.Status = TaskStatus.Paused;
            }

            return state;
        }
    }
}
