using FirecrackerContainerd.Agent.Processes;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Protos.Containerd.TaskTypes;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>One process of a container: its init (empty exec id) or an exec.</summary>
internal sealed class ManagedProcess
{
    private readonly TaskCompletionSource<ProcessExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ManagedProcess(string containerId, string execId, ProcessIo io, bool terminal, string? processJson)
    {
        ContainerId = containerId;
        ExecId = execId;
        Io = io;
        Terminal = terminal;
        ProcessJson = processJson;
    }

    public string ContainerId { get; }

    public string ExecId { get; }

    public ProcessIo Io { get; }

    public bool Terminal { get; }

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
}

/// <summary>A container: its init process and the execs running beside it.</summary>
internal sealed class ContainerTask(string id, string bundle, ManagedProcess init, string? cgroupDirectory)
{
    /// <summary>The init's cgroup v2 directory, read when it was created; null when it has none.</summary>
    public string? CgroupDirectory { get; } = cgroupDirectory;

    public string Id { get; } = id;

    public string Bundle { get; } = bundle;

    public ManagedProcess Init { get; } = init;

    public Dictionary<string, ManagedProcess> Execs { get; } = new(StringComparer.Ordinal);

    public bool Paused { get; set; }
}
