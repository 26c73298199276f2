using FirecrackerContainerd.Agent.Processes;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Protos.Containerd.TaskTypes;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>One process of a container: its init (empty exec id) or an exec.</summary>
internal sealed class ManagedProcess
{
    private readonly TaskCompletionSource<ProcessExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ManagedProcess(string containerId, string execId, ProcessIo io, string? processJson = null)
    {
        ContainerId = containerId;
        ExecId = execId;
        Io = io;
        ProcessJson = processJson;
    }

    public string ContainerId { get; }

    public string ExecId { get; }

    /// <summary>Whether this is the container's init process.</summary>
    public bool IsInit => ExecId.Length == 0;

    /// <summary>The process for error messages: <c>task c1</c> or <c>exec e1 in task c1</c>.</summary>
    public string Description => IsInit ? $"task {ContainerId}" : $"exec {ExecId} in task {ContainerId}";

    public ProcessIo Io { get; }

    /// <summary>Whether the process's stdio is a terminal.</summary>
    public bool Terminal => Io.IsTerminal;

    /// <summary>An exec's OCI process JSON, until it starts.</summary>
    public string? ProcessJson { get; }

    public int Pid { get; set; }

    public Status Status { get; set; } = Status.Created;

    /// <summary>Completes when the process has exited and its output has been handed to the host.</summary>
    public Task<ProcessExit> Exited => _exited.Task;

    public void SetExited(ProcessExit exit)
    {
        Status = Status.Stopped;
        _exited.TrySetResult(exit);
    }

    /// <summary>Ends the process's input (CloseIO).</summary>
    /// <exception cref="TaskException">The process's stdio is gone.</exception>
    public async Task CloseStdinAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Io.CloseStdinAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            throw new TaskException(TaskError.FailedPrecondition, $"close stdin of {Description}: {e.Message}", e);
        }
    }

    /// <summary>Sets the window size of the process's terminal.</summary>
    /// <exception cref="TaskException">The process has no terminal, or it is gone.</exception>
    public void ResizeTerminal(ushort columns, ushort rows)
    {
        if (!Io.IsTerminal)
        {
            throw new TaskException(TaskError.FailedPrecondition, $"resize terminal of {Description}: the process has no terminal");
        }

        try
        {
            Io.ResizeTerminal(columns, rows);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            throw new TaskException(TaskError.FailedPrecondition, $"resize terminal of {Description}: {e.Message}", e);
        }

        AgentTrace.Write($"terminal of {Description} resized to {columns}x{rows}");
    }
}
