using FirecrackerContainerd.Agent.Cgroups;
using FirecrackerContainerd.Agent.Oci;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.TaskTypes;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>
/// A container in the guest: its bundle, its init process and the execs beside it, and what the OCI runtime does
/// to them. Its callers serialise the calls that change it (the task service's lock).
/// </summary>
internal sealed class Container
{
    private readonly Dictionary<string, ManagedProcess> _execs = new(StringComparer.Ordinal);
    private readonly OciRuntime _runtime;
    private readonly ProcessLauncher _launcher;

    private Container(string id, BundleDir bundle, ManagedProcess init, string? cgroupDirectory, OciRuntime runtime, ProcessLauncher launcher)
    {
        Id = id;
        Bundle = bundle;
        Init = init;
        CgroupDirectory = cgroupDirectory;
        _runtime = runtime;
        _launcher = launcher;
    }

    public string Id { get; }

    public BundleDir Bundle { get; }

    public ManagedProcess Init { get; }

    /// <summary>The init's cgroup v2 directory, read when it was created; null when it has none.</summary>
    public string? CgroupDirectory { get; }

    public bool Paused { get; private set; }

    /// <summary>
    /// Lays out <paramref name="bundle"/> (its rootfs directory, <paramref name="config"/> as its config.json) and
    /// has the runtime create the container, its init's stdio as <paramref name="request"/> says.
    /// </summary>
    /// <exception cref="TaskException">The runtime failed.</exception>
    public static async Task<Container> CreateAsync(
        ContainerRequest request, BundleDir bundle, byte[] config, OciRuntime runtime, ProcessLauncher launcher, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(bundle.RootfsPath);
        bundle.WriteOCIConfig(config);
        ProcessIo io = launcher.OpenIo(request.Stdio);
        var init = new ManagedProcess(request.Id, string.Empty, io);
        try
        {
            init.Pid = await launcher.CreateInitAsync(request.Id, bundle, io, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await io.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        // Read now, while the init surely exists: later its pid may be gone or reused.
        string? cgroup = CgroupLocator.DirectoryOf(init.Pid);
        AgentTrace.Write($"task {request.Id}: cgroup {cgroup ?? "(none)"}");
        return new Container(request.Id, bundle, init, cgroup, runtime, launcher);
    }

    /// <summary>The init (empty <paramref name="execId"/>) or exec <paramref name="execId"/>.</summary>
    /// <exception cref="TaskException">NotFound: no such exec.</exception>
    public ManagedProcess Process(string execId) => execId.Length == 0 ? Init
        : _execs.TryGetValue(execId, out ManagedProcess? exec) ? exec
        : throw new TaskException(TaskError.NotFound, $"exec {execId} in task {Id}: not found");

    /// <summary>The status containerd sees for <paramref name="process"/>: a running init of a paused container is paused.</summary>
    public Status StatusOf(ManagedProcess process) =>
        process.IsInit && Paused && process.Status == Status.Running ? Status.Paused : process.Status;

    /// <summary>Starts the created init (empty <paramref name="execId"/>) or exec.</summary>
    /// <exception cref="TaskException">No such exec, the process is not in the created state, or the runtime failed.</exception>
    public async Task<ManagedProcess> StartAsync(string execId, CancellationToken cancellationToken)
    {
        ManagedProcess process = Process(execId);
        if (process.Status != Status.Created)
        {
            throw new TaskException(TaskError.FailedPrecondition, process.IsInit
                ? $"task {Id}: cannot start a task that is {process.Status}"
                : $"exec {execId} in task {Id}: cannot start a process that is {process.Status}");
        }

        if (process.IsInit)
        {
            await RuntimeAsync("start", () => _runtime.StartAsync(Id, cancellationToken)).ConfigureAwait(false);
            process.Status = process.Exited.IsCompleted ? Status.Stopped : Status.Running;
            return process;
        }

        process.Pid = await _launcher.StartExecAsync(Id, Bundle, execId, process.ProcessJson!, process.Io, cancellationToken).ConfigureAwait(false);
        process.Status = Status.Running;
        return process;
    }

    /// <summary>Adds exec <paramref name="execId"/>, listening for its stdio; <see cref="StartAsync"/> runs it.</summary>
    /// <exception cref="TaskException">AlreadyExists: the container has an exec of that id.</exception>
    public ManagedProcess AddExec(string execId, string processJson, StdioPaths stdio)
    {
        if (_execs.ContainsKey(execId))
        {
            throw new TaskException(TaskError.AlreadyExists, $"exec {execId} in task {Id}: already exists");
        }

        var exec = new ManagedProcess(Id, execId, _launcher.OpenIo(stdio), processJson);
        _execs[execId] = exec;
        return exec;
    }

    /// <summary>
    /// Deletes an exited exec, or with an empty <paramref name="execId"/> the container itself from the runtime
    /// (once neither its init nor an exec runs); the process's stdio is closed.
    /// </summary>
    /// <exception cref="TaskException">No such exec, a process still runs, or the runtime failed.</exception>
    public async Task<ManagedProcess> DeleteAsync(string execId, CancellationToken cancellationToken)
    {
        ManagedProcess process = Process(execId);
        if (process.Status is Status.Running or Status.Paused)
        {
            throw new TaskException(TaskError.FailedPrecondition, $"process {Id}/{execId}: cannot delete a running process");
        }

        if (process.IsInit)
        {
            if (_execs.Values.Any(e => e.Status == Status.Running))
            {
                throw new TaskException(TaskError.FailedPrecondition, $"task {Id}: execs are still running");
            }

            await RuntimeAsync("delete", () => _runtime.DeleteAsync(Id, force: true, cancellationToken)).ConfigureAwait(false);
            foreach (ManagedProcess exec in _execs.Values)
            {
                await exec.Io.DisposeAsync().ConfigureAwait(false);
            }
        }
        else
        {
            _execs.Remove(execId);
        }

        await process.Io.DisposeAsync().ConfigureAwait(false);
        return process;
    }

    /// <summary>Freezes the container's processes.</summary>
    /// <exception cref="TaskException">The init does not run, or the runtime failed.</exception>
    public async Task PauseAsync(CancellationToken cancellationToken)
    {
        RequireRunning("pause");
        await RuntimeAsync("pause", () => _runtime.PauseAsync(Id, cancellationToken)).ConfigureAwait(false);
        Paused = true;
    }

    /// <summary>Thaws the container's processes.</summary>
    /// <exception cref="TaskException">The init does not run, or the runtime failed.</exception>
    public async Task ResumeAsync(CancellationToken cancellationToken)
    {
        RequireRunning("resume");
        await RuntimeAsync("resume", () => _runtime.ResumeAsync(Id, cancellationToken)).ConfigureAwait(false);
        Paused = false;
    }

    /// <summary>
    /// Sends <paramref name="signal"/> to <paramref name="process"/>: through the runtime to the init (to every
    /// process of the container with <paramref name="all"/>), directly to an exec.
    /// </summary>
    /// <exception cref="TaskException">NotFound: the process has exited; Unknown: the runtime failed.</exception>
    public async Task KillAsync(ManagedProcess process, int signal, bool all, CancellationToken cancellationToken)
    {
        if (process.Status == Status.Stopped)
        {
            throw new TaskException(TaskError.NotFound, $"process {process.ContainerId}/{process.ExecId}: not running (already exited)");
        }

        if (process.IsInit)
        {
            try
            {
                await _runtime.KillAsync(Id, signal, all, cancellationToken).ConfigureAwait(false);
            }
            catch (OciRuntimeException e)
            {
                throw process.Exited.IsCompleted
                    ? new TaskException(TaskError.NotFound, $"process {Id}: not running: {e.Message}", e)
                    : new TaskException(TaskError.Unknown, $"kill {Id}: {e.Message}", e);
            }
        }
        else if (process.Status == Status.Running && !Native.Interop.Kill(process.Pid, signal))
        {
            throw new TaskException(TaskError.NotFound, $"{process.Description}: not running");
        }
    }

    /// <summary>Applies an OCI LinuxResources JSON document to the container.</summary>
    /// <exception cref="TaskException">InvalidArgument: the runtime refused it.</exception>
    public async Task UpdateAsync(ReadOnlyMemory<byte> resources, CancellationToken cancellationToken)
    {
        string file = Path.Combine(Bundle.RootPath, "resources.json");
        await File.WriteAllBytesAsync(file, resources, cancellationToken).ConfigureAwait(false);
        try
        {
            await _runtime.UpdateAsync(Id, file, cancellationToken).ConfigureAwait(false);
        }
        catch (OciRuntimeException e)
        {
            throw new TaskException(TaskError.InvalidArgument, $"update {Id}: {e.Message}", e);
        }
    }

    /// <summary>The pids of every process in the container.</summary>
    /// <exception cref="TaskException">The runtime failed.</exception>
    public async Task<IReadOnlyList<int>> PidsAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _runtime.PidsAsync(Id, cancellationToken).ConfigureAwait(false);
        }
        catch (OciRuntimeException e)
        {
            throw new TaskException(TaskError.Unknown, $"list the processes of task {Id}: {e.Message}", e);
        }
    }

    /// <summary>The container's cgroup v2 metrics, read now.</summary>
    /// <exception cref="TaskException">FailedPrecondition: the init was in no cgroup v2.</exception>
    public Protos.Cgroups.V2.Metrics Stats() => CgroupDirectory is { } cgroup
        ? CgroupMetrics.Read(cgroup)
        : throw new TaskException(TaskError.FailedPrecondition, $"stats of task {Id}: its init process is in no cgroup v2");

    private void RequireRunning(string operation)
    {
        if (Init.Status != Status.Running)
        {
            throw new TaskException(TaskError.FailedPrecondition, $"task {Id}: cannot {operation} a task that is {Init.Status}");
        }
    }

    private async Task RuntimeAsync(string operation, Func<Task> command)
    {
        try
        {
            await command().ConfigureAwait(false);
        }
        catch (OciRuntimeException e)
        {
            throw new TaskException(TaskError.Unknown, $"{operation} task {Id}: {e.Message}", e);
        }
    }
}
