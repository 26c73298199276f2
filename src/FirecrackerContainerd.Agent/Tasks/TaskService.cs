using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Agent.Cgroups;
using FirecrackerContainerd.Agent.Events;
using FirecrackerContainerd.Agent.Oci;
using FirecrackerContainerd.Agent.Processes;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.TaskTypes;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>
/// containerd's task API inside the guest: containers run by the OCI runtime from bundles under the
/// bundle root, their stdio relayed over vsock ports, their exits reaped here and reported as events.
/// </summary>
internal sealed class TaskService : ITaskService, IDisposable
{
    /// <summary>How long an exited process's output may wait for the host before its exit is reported anyway.</summary>
    private static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(10);

    /// <summary>How long after the runtime returned its terminal master may take to arrive (it is sent before the runtime exits).</summary>
    private static readonly TimeSpan ConsoleGrace = TimeSpan.FromSeconds(10);

    /// <summary>The type URL containerd gives cgroup v2 metrics (typeurl: the message's full name).</summary>
    private static readonly string MetricsTypeUrl = Protos.Cgroups.V2.Metrics.Descriptor.FullName;

    private readonly OciRuntime _runtime;
    private readonly ChildReaper _reaper;
    private readonly IStdioTransport _stdio;
    private readonly EventQueue _events;
    private readonly OomWatcher _oom;
    private readonly string? _metadataDirectory;
    private readonly string _bundleRoot;
    private readonly Dictionary<string, ContainerTask> _tasks = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _lock = new(1, 1);
    private long _consoleSockets;

    public TaskService(OciRuntime runtime, ChildReaper reaper, IStdioTransport stdio, EventQueue events, string bundleRoot, string? metadataDirectory = null)
    {
        _metadataDirectory = metadataDirectory;
        _runtime = runtime;
        _reaper = reaper;
        _stdio = stdio;
        _events = events;
        _oom = new OomWatcher(id =>
        {
            AgentTrace.Write($"task {id}: OOM kill");
            _events.Publish("/tasks/oom", new TaskOOM { ContainerId = id });
        });
        _bundleRoot = bundleRoot;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _oom.Dispose();
        _lock.Dispose();
    }

    public async Task<CreateTaskResponse> CreateAsync(CreateTaskRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        ValidateId(request.Id, "container id");
        ExtraData extra = UnpackExtraData(request.Options, "Create options");
        if (extra.JsonSpec.IsEmpty)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"create {request.Id}: ExtraData carries no OCI spec");
        }

        StdioPaths stdio = StdioOf(request.Terminal, extra, $"create {request.Id}");
        string bundle = Path.Combine(_bundleRoot, request.Id);
        byte[] spec = PrepareSpec(extra.JsonSpec.ToByteArray(), request.Terminal, _metadataDirectory, SpecCompatibility.RuntimeOf(_runtime.Name), bundle, $"create {request.Id}: the OCI spec");

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_tasks.ContainsKey(request.Id))
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"task {request.Id}: already exists");
            }

            Directory.CreateDirectory(Path.Combine(bundle, "rootfs"));
            await File.WriteAllBytesAsync(Path.Combine(bundle, "config.json"), spec, cancellationToken).ConfigureAwait(false);
            ProcessIo io = ProcessIo.Create(_stdio, stdio);
            var init = new ManagedProcess(request.Id, string.Empty, io, request.Terminal, null);
            try
            {
                init.Pid = await RunWithStdioAsync(
                    io,
                    $"create {request.Id}",
                    console => _runtime.CreateAsync(request.Id, bundle, io.ChildStdio, console, cancellationToken),
                    () => _runtime.DeleteAsync(request.Id, force: true, CancellationToken.None),
                    cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await io.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            // Read now, while the init surely exists: later its pid may be gone or reused.
            string? cgroup = CgroupLocator.DirectoryOf(init.Pid);
            AgentTrace.Write($"task {request.Id}: cgroup {cgroup ?? "(none)"}");
            _tasks[request.Id] = new ContainerTask(request.Id, bundle, init, cgroup);
            if (cgroup is not null)
            {
                _oom.Watch(request.Id, cgroup);
            }

            WatchExit(init);
            _events.Publish("/tasks/create", new TaskCreate { ContainerId = request.Id, Bundle = bundle, Pid = (uint)init.Pid });
            return new CreateTaskResponse { Pid = (uint)init.Pid };
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<StartResponse> StartAsync(StartRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            if (request.ExecId.Length == 0)
            {
                if (task.Init.Status != Status.Created)
                {
                    throw new TtrpcException(StatusCode.FailedPrecondition, $"task {task.Id}: cannot start a task that is {task.Init.Status}");
                }

                await _runtime.StartAsync(task.Id, cancellationToken).ConfigureAwait(false);
                task.Init.Status = task.Init.Exited.IsCompleted ? Status.Stopped : Status.Running;
                _events.Publish("/tasks/start", new TaskStart { ContainerId = task.Id, Pid = (uint)task.Init.Pid });
                return new StartResponse { Pid = (uint)task.Init.Pid };
            }

            ManagedProcess exec = FindExec(task, request.ExecId);
            if (exec.Status != Status.Created)
            {
                throw new TtrpcException(StatusCode.FailedPrecondition, $"exec {request.ExecId} in task {task.Id}: cannot start a process that is {exec.Status}");
            }

            string processFile = Path.Combine(task.Bundle, $"exec-{exec.ExecId}.json");
            await File.WriteAllTextAsync(processFile, exec.ProcessJson, cancellationToken).ConfigureAwait(false);
            string pidFile = Path.Combine(task.Bundle, $"exec-{exec.ExecId}.pid");
            exec.Pid = await RunWithStdioAsync(
                exec.Io,
                $"exec {exec.ExecId} in task {task.Id}",
                console => _runtime.ExecAsync(task.Id, processFile, pidFile, exec.Io.ChildStdio, console, cancellationToken),
                () => KillExecAsync(pidFile),
                cancellationToken).ConfigureAwait(false);

            exec.Status = Status.Running;
            WatchExit(exec);
            _events.Publish("/tasks/exec-started", new TaskExecStarted { ContainerId = task.Id, ExecId = exec.ExecId, Pid = (uint)exec.Pid });
            return new StartResponse { Pid = (uint)exec.Pid };
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<Empty> ExecAsync(ExecProcessRequest request, TtrpcCallContext context)
    {
        ValidateId(request.ExecId, "exec id");
        ExtraData extra = UnpackExtraData(request.Spec, "Exec spec");
        StdioPaths stdio = StdioOf(request.Terminal, extra, $"exec {request.ExecId}");
        JsonObject process = ParseObject(extra.JsonSpec.ToByteArray(), $"exec {request.ExecId}: the process spec");
        try
        {
            SpecCompatibility.CheckProcess(process, SpecCompatibility.RuntimeOf(_runtime.Name), $"exec {request.ExecId}: the process spec");
        }
        catch (UnsupportedSpecException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message);
        }

        // The runtime refuses a process whose terminal flag disagrees with the console socket it is given.
        process["terminal"] = request.Terminal;
        string processJson = process.ToJsonString();

        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            if (task.Execs.ContainsKey(request.ExecId))
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"exec {request.ExecId} in task {task.Id}: already exists");
            }

            ProcessIo io = ProcessIo.Create(_stdio, stdio);
            task.Execs[request.ExecId] = new ManagedProcess(task.Id, request.ExecId, io, request.Terminal, processJson);
            _events.Publish("/tasks/exec-added", new TaskExecAdded { ContainerId = task.Id, ExecId = request.ExecId });
            return new Empty();
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<StateResponse> StateAsync(StateRequest request, TtrpcCallContext context)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            ManagedProcess process = request.ExecId.Length == 0 ? task.Init : FindExec(task, request.ExecId);
            var state = new StateResponse
            {
                Id = task.Id,
                ExecId = request.ExecId,
                Bundle = task.Bundle,
                Pid = (uint)process.Pid,
                Status = process.ExecId.Length == 0 && task.Paused && process.Status == Status.Running ? Status.Paused : process.Status,
                Terminal = process.Terminal,
            };
            if (process.Exited.IsCompletedSuccessfully)
            {
                ProcessExit exit = process.Exited.Result;
                state.ExitStatus = (uint)exit.ExitStatus;
                state.ExitedAt = Timestamp.FromDateTimeOffset(exit.ExitedAt);
            }

            return state;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<Empty> KillAsync(KillRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        if (request.Signal is 0 or > 64)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"kill {request.Id}: signal {request.Signal} is not a signal");
        }

        ManagedProcess process = await FindProcessAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);

        if (process.Status == Status.Stopped)
        {
            throw new TtrpcException(StatusCode.NotFound, $"process {process.ContainerId}/{process.ExecId}: not running (already exited)");
        }

        if (process.ExecId.Length == 0)
        {
            try
            {
                await _runtime.KillAsync(process.ContainerId, (int)request.Signal, request.All, cancellationToken).ConfigureAwait(false);
            }
            catch (OciRuntimeException e) when (process.Exited.IsCompleted)
            {
                throw new TtrpcException(StatusCode.NotFound, $"process {process.ContainerId}: not running: {e.Message}");
            }
        }
        else if (process.Status == Status.Running && !Native.Interop.Kill(process.Pid, (int)request.Signal))
        {
            throw new TtrpcException(StatusCode.NotFound, $"exec {process.ExecId} in task {process.ContainerId}: not running");
        }

        return new Empty();
    }

    public async Task<WaitResponse> WaitAsync(WaitRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        ManagedProcess process = await FindProcessAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);

        ProcessExit exit = await process.Exited.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new WaitResponse { ExitStatus = (uint)exit.ExitStatus, ExitedAt = Timestamp.FromDateTimeOffset(exit.ExitedAt) };
    }

    public async Task<DeleteResponse> DeleteAsync(DeleteRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            ManagedProcess process = request.ExecId.Length == 0 ? task.Init : FindExec(task, request.ExecId);
            if (process.Status is Status.Running or Status.Paused)
            {
                throw new TtrpcException(StatusCode.FailedPrecondition, $"process {task.Id}/{request.ExecId}: cannot delete a running process");
            }

            if (request.ExecId.Length == 0)
            {
                if (task.Execs.Values.Any(e => e.Status == Status.Running))
                {
                    throw new TtrpcException(StatusCode.FailedPrecondition, $"task {task.Id}: execs are still running");
                }

                try
                {
                    await _runtime.DeleteAsync(task.Id, force: true, cancellationToken).ConfigureAwait(false);
                }
                catch (OciRuntimeException e)
                {
                    throw new TtrpcException(StatusCode.Unknown, $"delete {task.Id}: {e.Message}", e);
                }

                foreach (ManagedProcess exec in task.Execs.Values)
                {
                    await exec.Io.DisposeAsync().ConfigureAwait(false);
                }

                _tasks.Remove(task.Id);
                _oom.Forget(task.Id);
            }
            else
            {
                task.Execs.Remove(request.ExecId);
            }

            await process.Io.DisposeAsync().ConfigureAwait(false);
            var response = new DeleteResponse { Pid = (uint)process.Pid };
            if (process.Exited.IsCompletedSuccessfully)
            {
                ProcessExit exit = process.Exited.Result;
                response.ExitStatus = (uint)exit.ExitStatus;
                response.ExitedAt = Timestamp.FromDateTimeOffset(exit.ExitedAt);
            }

            _events.Publish("/tasks/delete", new TaskDelete
            {
                ContainerId = task.Id,
                Id = request.ExecId,
                Pid = response.Pid,
                ExitStatus = response.ExitStatus,
                ExitedAt = response.ExitedAt,
            });
            return response;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<PidsResponse> PidsAsync(PidsRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _ = Find(request.Id);
        }
        finally
        {
            _lock.Release();
        }

        IReadOnlyList<int> pids = await _runtime.PidsAsync(request.Id, cancellationToken).ConfigureAwait(false);
        var response = new PidsResponse();
        response.Processes.AddRange(pids.Select(p => new ProcessInfo { Pid = (uint)p }));
        return response;
    }

    public Task<Empty> PauseAsync(PauseRequest request, TtrpcCallContext context) => PauseAsync(request.Id, pause: true, context.CancellationToken);

    public Task<Empty> ResumeAsync(ResumeRequest request, TtrpcCallContext context) => PauseAsync(request.Id, pause: false, context.CancellationToken);

    public Task<Empty> ShutdownAsync(ShutdownRequest request, TtrpcCallContext context) => Task.FromResult(new Empty());

    public Task<Empty> CheckpointAsync(CheckpointTaskRequest request, TtrpcCallContext context) =>
        throw new TtrpcException(StatusCode.Unimplemented, "checkpoints need VM snapshots, which are not supported yet");

    private async Task<Empty> PauseAsync(string id, bool pause, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(id);
            if (task.Init.Status != Status.Running)
            {
                throw new TtrpcException(StatusCode.FailedPrecondition, $"task {id}: cannot {(pause ? "pause" : "resume")} a task that is {task.Init.Status}");
            }

            if (pause)
            {
                await _runtime.PauseAsync(id, cancellationToken).ConfigureAwait(false);
                task.Paused = true;
                _events.Publish("/tasks/paused", new TaskPaused { ContainerId = id });
            }
            else
            {
                await _runtime.ResumeAsync(id, cancellationToken).ConfigureAwait(false);
                task.Paused = false;
                _events.Publish("/tasks/resumed", new TaskResumed { ContainerId = id });
            }

            return new Empty();
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<Empty> CloseIOAsync(CloseIORequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        ManagedProcess process = await FindProcessAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);
        if (request.Stdin)
        {
            try
            {
                await process.Io.CloseStdinAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                throw new TtrpcException(StatusCode.FailedPrecondition, $"close stdin of {Describe(process)}: {e.Message}", e);
            }
        }

        return new Empty();
    }

    public async Task<Empty> ResizePtyAsync(ResizePtyRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        if (request.Width > ushort.MaxValue || request.Height > ushort.MaxValue)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"resize terminal of {request.Id}/{request.ExecId}: {request.Width}x{request.Height} is larger than a terminal can be");
        }

        ManagedProcess process = await FindProcessAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);
        if (!process.Io.IsTerminal)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, $"resize terminal of {Describe(process)}: the process has no terminal");
        }

        try
        {
            process.Io.ResizeTerminal((ushort)request.Width, (ushort)request.Height);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, $"resize terminal of {Describe(process)}: {e.Message}", e);
        }

        AgentTrace.Write($"terminal of {Describe(process)} resized to {request.Width}x{request.Height}");
        return new Empty();
    }

    public async Task<StatsResponse> StatsAsync(StatsRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        string? cgroup;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            cgroup = Find(request.Id).CgroupDirectory;
        }
        finally
        {
            _lock.Release();
        }

        if (cgroup is null)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, $"stats of task {request.Id}: its init process is in no cgroup v2");
        }

        Protos.Cgroups.V2.Metrics metrics = CgroupMetrics.Read(cgroup);
        return new StatsResponse { Stats = new Any { TypeUrl = MetricsTypeUrl, Value = metrics.ToByteString() } };
    }

    public async Task<Empty> UpdateAsync(UpdateTaskRequest request, TtrpcCallContext context)
    {
        CancellationToken cancellationToken = context.CancellationToken;
        if (request.Resources is null || request.Resources.Value.IsEmpty)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"update {request.Id}: no resources given");
        }

        string file;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            file = Path.Combine(task.Bundle, "resources.json");
            await File.WriteAllBytesAsync(file, request.Resources.Value.ToByteArray(), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }

        try
        {
            await _runtime.UpdateAsync(request.Id, file, cancellationToken).ConfigureAwait(false);
        }
        catch (OciRuntimeException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"update {request.Id}: {e.Message}", e);
        }

        return new Empty();
    }

    public async Task<ConnectResponse> ConnectAsync(ConnectRequest request, TtrpcCallContext context)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var response = new ConnectResponse { ShimPid = (uint)Environment.ProcessId, Version = "2" };
            if (_tasks.TryGetValue(request.Id, out ContainerTask? task))
            {
                response.TaskPid = (uint)task.Init.Pid;
            }

            return response;
        }
        finally
        {
            _lock.Release();
        }
    }

    private void WatchExit(ManagedProcess process)
    {
        _ = Task.Run(async () =>
        {
            ProcessExit exit = await _reaper.WaitAsync(process.Pid).ConfigureAwait(false);
            _reaper.Forget(process.Pid);
            AgentTrace.Write($"process {process.ContainerId}/{process.ExecId} (pid {process.Pid}) exited with {exit.ExitStatus}");

            // The exit is reported after the output reached the host, so the host's copy ends before the exit.
            await Task.WhenAny(process.Io.OutputDone, Task.Delay(OutputGrace)).ConfigureAwait(false);

            // An OOM kill that ended the container is reported before the exit it caused.
            _oom.Check(process.ContainerId);

            // Under the lock, so a process that exits at once is reported after its start, never before.
            AgentTrace.Write($"process {process.ContainerId}/{process.ExecId} output done: {process.Io.OutputDone.IsCompleted}");
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                process.SetExited(exit);
                _events.Publish("/tasks/exit", new TaskExit
                {
                    ContainerId = process.ContainerId,
                    Id = process.ExecId.Length == 0 ? process.ContainerId : process.ExecId,
                    Pid = (uint)exit.Pid,
                    ExitStatus = (uint)exit.ExitStatus,
                    ExitedAt = Timestamp.FromDateTimeOffset(exit.ExitedAt),
                });
            }
            finally
            {
                _lock.Release();
            }
        });
    }

    /// <summary>
    /// Runs a runtime command that creates a process; with a terminal, through a console socket whose
    /// master goes to the process's stdio. A process whose terminal never arrives is undone.
    /// </summary>
    private async Task<int> RunWithStdioAsync(ProcessIo io, string what, Func<string?, Task<int>> run, Func<Task> undo, CancellationToken cancellationToken)
    {
        if (!io.IsTerminal)
        {
            try
            {
                return await run(null).ConfigureAwait(false);
            }
            catch (OciRuntimeException e)
            {
                throw new TtrpcException(StatusCode.Unknown, $"{what}: {e.Message}", e);
            }
            finally
            {
                io.CloseChildEnds();
            }
        }

        string path = Path.Combine(_runtime.StateRoot, ".console", $"{Interlocked.Increment(ref _consoleSockets)}.sock");
        using ConsoleSocket console = ConsoleSocket.Listen(path);
        using var receiving = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task<PseudoTerminal> master = console.ReceiveMasterAsync(receiving.Token);
        int pid;
        try
        {
            pid = await run(console.Path).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Whatever failed, the pending receive must end before the console socket goes away.
            await receiving.CancelAsync().ConfigureAwait(false);
            await DiscardAsync(master).ConfigureAwait(false);
            if (e is OciRuntimeException runtimeError)
            {
                throw new TtrpcException(StatusCode.Unknown, $"{what}: {runtimeError.Message}", runtimeError);
            }

            throw;
        }
        finally
        {
            io.CloseChildEnds();
        }

        receiving.CancelAfter(ConsoleGrace);
        try
        {
            io.AttachTerminal(await master.ConfigureAwait(false));
            return pid;
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            await UndoAsync(undo, what).ConfigureAwait(false);
            throw new TtrpcException(StatusCode.Unknown, $"{what}: the runtime handed over no terminal on {path}: {e.Message}", e);
        }
    }

    private static async Task DiscardAsync(Task<PseudoTerminal> master)
    {
        try
        {
            (await master.ConfigureAwait(false)).Dispose();
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Nothing was received: nothing to close.
        }
    }

    private static async Task UndoAsync(Func<Task> undo, string what)
    {
        try
        {
            await undo().ConfigureAwait(false);
        }
        catch (Exception e) when (e is OciRuntimeException or IOException)
        {
            AgentTrace.Write($"{what}: undoing the process without a terminal failed: {e.Message}");
        }
    }

    private static async Task KillExecAsync(string pidFile)
    {
        string text = await File.ReadAllTextAsync(pidFile).ConfigureAwait(false);
        if (int.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid) && pid > 0)
        {
            _ = Native.Interop.Kill(pid, 9);
        }
    }

    private async Task<ManagedProcess> FindProcessAsync(string id, string execId, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(id);
            return execId.Length == 0 ? task.Init : FindExec(task, execId);
        }
        finally
        {
            _lock.Release();
        }
    }

    private static string Describe(ManagedProcess process) =>
        process.ExecId.Length == 0 ? $"task {process.ContainerId}" : $"exec {process.ExecId} in task {process.ContainerId}";

    // A terminal merges stderr into stdout: the host must not wait for a stream that never comes.
    private static StdioPaths StdioOf(bool terminal, ExtraData extra, string what)
    {
        if (terminal && extra.StderrPort != 0)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"{what}: a process with a terminal has no separate stderr, yet stderr port {extra.StderrPort} was given");
        }

        return new StdioPaths(terminal, extra.StdinPort, extra.StdoutPort, extra.StderrPort);
    }

    private ContainerTask Find(string id)
    {
        return _tasks.TryGetValue(id, out ContainerTask? task)
            ? task
            : throw new TtrpcException(StatusCode.NotFound, $"task {id}: not found");
    }

    private static ManagedProcess FindExec(ContainerTask task, string execId)
    {
        return task.Execs.TryGetValue(execId, out ManagedProcess? exec)
            ? exec
            : throw new TtrpcException(StatusCode.NotFound, $"exec {execId} in task {task.Id}: not found");
    }

    private static void ValidateId(string id, string what)
    {
        if (!Identifiers.IsValid(id))
        {
            try
            {
                Identifiers.Validate(id);
            }
            catch (InvalidIdentifierException e)
            {
                throw new TtrpcException(StatusCode.InvalidArgument, $"invalid {what}: {e.Message}");
            }
        }
    }

    private static ExtraData UnpackExtraData(Any? any, string what)
    {
        if (any is null || !any.TypeUrl.EndsWith("/ExtraData", StringComparison.Ordinal) && any.TypeUrl != "ExtraData")
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"{what} must be an ExtraData message, got \"{any?.TypeUrl}\"");
        }

        try
        {
            return ExtraData.Parser.ParseFrom(any.Value);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"{what}: malformed ExtraData: {e.Message}");
        }
    }

    // The spec must ask only for what the guest can honour (SpecCompatibility). The container's root is always
    // the bundle's rootfs directory (the mounted drive), whatever the host said; its terminal flag is the
    // request's, which the runtime checks against the console socket; the VM's metadata directory is mounted
    // read-only at its own path (unless the spec mounts something there).
    private static byte[] PrepareSpec(byte[] spec, bool terminal, string? metadataDirectory, GuestRuntimes runtime, string bundle, string what)
    {
        JsonObject obj = ParseObject(spec, "the OCI spec");
        try
        {
            SpecCompatibility.CheckConfig(obj, runtime, bundle, path => File.Exists(path) || Directory.Exists(path), what);
        }
        catch (UnsupportedSpecException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message);
        }

        if (obj["root"] is not JsonObject root)
        {
            obj["root"] = root = new JsonObject();
        }

        root["path"] = "rootfs";
        if (obj["process"] is not JsonObject process)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, "the OCI spec has no process object");
        }

        process["terminal"] = terminal;
        if (metadataDirectory is not null)
        {
            if (obj["mounts"] is not JsonArray mounts)
            {
                obj["mounts"] = mounts = [];
            }

            if (!mounts.Any(m => m is JsonObject o && o["destination"]?.GetValueKind() == JsonValueKind.String && (string?)o["destination"] == metadataDirectory))
            {
                mounts.Add((JsonNode)new JsonObject
                {
                    ["destination"] = metadataDirectory,
                    ["type"] = "bind",
                    ["source"] = metadataDirectory,
                    ["options"] = new JsonArray("rbind", "ro", "nosuid", "nodev", "noexec"),
                });
            }
        }

        return Encoding.UTF8.GetBytes(obj.ToJsonString());
    }

    private static JsonObject ParseObject(byte[] json, string what)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"{what} is not JSON: {e.Message}");
        }

        return node as JsonObject ?? throw new TtrpcException(StatusCode.InvalidArgument, $"{what} is not a JSON object");
    }
}
