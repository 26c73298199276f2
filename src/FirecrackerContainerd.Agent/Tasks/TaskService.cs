using System.Text;
using System.Text.Json;
using FirecrackerContainerd.Agent.Events;
using FirecrackerContainerd.Agent.Oci;
using FirecrackerContainerd.Agent.Processes;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.TaskTypes;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>
/// containerd's task API inside the guest: containers run by the OCI runtime from bundles under the
/// bundle root, their stdio relayed over vsock ports, their exits reaped here and reported as events.
/// </summary>
internal sealed class TaskService : IDisposable
{
    /// <summary>The ttrpc service name.</summary>
    public const string ServiceName = "containerd.task.v2.Task";

    /// <summary>How long an exited process's output may wait for the host before its exit is reported anyway.</summary>
    private static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(10);

    private readonly OciRuntime _runtime;
    private readonly ChildReaper _reaper;
    private readonly IStdioTransport _stdio;
    private readonly EventQueue _events;
    private readonly string _bundleRoot;
    private readonly Dictionary<string, ContainerTask> _tasks = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _lock = new(1, 1);

    public TaskService(OciRuntime runtime, ChildReaper reaper, IStdioTransport stdio, EventQueue events, string bundleRoot)
    {
        _runtime = runtime;
        _reaper = reaper;
        _stdio = stdio;
        _events = events;
        _bundleRoot = bundleRoot;
    }

    /// <inheritdoc/>
    public void Dispose() => _lock.Dispose();

    public void Register(TtrpcServiceRegistry registry)
    {
        registry
            .AddUnary<CreateTaskRequest, CreateTaskResponse>(ServiceName, "Create", CreateTaskRequest.Parser, (r, c) => CreateAsync(r, c.CancellationToken))
            .AddUnary<StartRequest, StartResponse>(ServiceName, "Start", StartRequest.Parser, (r, c) => StartAsync(r, c.CancellationToken))
            .AddUnary<StateRequest, StateResponse>(ServiceName, "State", StateRequest.Parser, (r, _) => StateAsync(r))
            .AddUnary<KillRequest, Empty>(ServiceName, "Kill", KillRequest.Parser, (r, c) => KillAsync(r, c.CancellationToken))
            .AddUnary<WaitRequest, WaitResponse>(ServiceName, "Wait", WaitRequest.Parser, (r, c) => WaitAsync(r, c.CancellationToken))
            .AddUnary<DeleteRequest, DeleteResponse>(ServiceName, "Delete", DeleteRequest.Parser, (r, c) => DeleteAsync(r, c.CancellationToken))
            .AddUnary<ExecProcessRequest, Empty>(ServiceName, "Exec", ExecProcessRequest.Parser, (r, _) => ExecAsync(r))
            .AddUnary<PidsRequest, PidsResponse>(ServiceName, "Pids", PidsRequest.Parser, (r, c) => PidsAsync(r, c.CancellationToken))
            .AddUnary<PauseRequest, Empty>(ServiceName, "Pause", PauseRequest.Parser, (r, c) => PauseAsync(r.Id, pause: true, c.CancellationToken))
            .AddUnary<ResumeRequest, Empty>(ServiceName, "Resume", ResumeRequest.Parser, (r, c) => PauseAsync(r.Id, pause: false, c.CancellationToken))
            .AddUnary<CloseIORequest, Empty>(ServiceName, "CloseIO", CloseIORequest.Parser, (r, _) => CloseIOAsync(r))
            .AddUnary<UpdateTaskRequest, Empty>(ServiceName, "Update", UpdateTaskRequest.Parser, (r, c) => UpdateAsync(r, c.CancellationToken))
            .AddUnary<ConnectRequest, ConnectResponse>(ServiceName, "Connect", ConnectRequest.Parser, (r, _) => ConnectAsync(r))
            .AddUnary<ShutdownRequest, Empty>(ServiceName, "Shutdown", ShutdownRequest.Parser, (_, _) => Task.FromResult(new Empty()))
            .AddUnary<ResizePtyRequest, Empty>(ServiceName, "ResizePty", ResizePtyRequest.Parser,
                (_, _) => throw new TtrpcException(StatusCode.Unimplemented, "terminals are not supported by this agent yet"))
            .AddUnary<StatsRequest, StatsResponse>(ServiceName, "Stats", StatsRequest.Parser,
                (_, _) => throw new TtrpcException(StatusCode.Unimplemented, "Stats is not supported by this agent yet"))
            .AddUnary<CheckpointTaskRequest, Empty>(ServiceName, "Checkpoint", CheckpointTaskRequest.Parser,
                (_, _) => throw new TtrpcException(StatusCode.Unimplemented, "checkpoints need VM snapshots, which are not supported yet"));
    }

    private async Task<CreateTaskResponse> CreateAsync(CreateTaskRequest request, CancellationToken cancellationToken)
    {
        ValidateId(request.Id, "container id");
        if (request.Terminal)
        {
            throw new TtrpcException(StatusCode.Unimplemented, "terminals are not supported by this agent yet");
        }

        ExtraData extra = UnpackExtraData(request.Options, "Create options");
        if (extra.JsonSpec.IsEmpty)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"create {request.Id}: ExtraData carries no OCI spec");
        }

        string bundle = Path.Combine(_bundleRoot, request.Id);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_tasks.ContainsKey(request.Id))
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"task {request.Id}: already exists");
            }

            Directory.CreateDirectory(Path.Combine(bundle, "rootfs"));
            await File.WriteAllBytesAsync(Path.Combine(bundle, "config.json"), RootfsRelative(extra.JsonSpec.ToByteArray()), cancellationToken)
                .ConfigureAwait(false);
            ProcessIo io = ProcessIo.Create(_stdio, extra.StdinPort, extra.StdoutPort, extra.StderrPort);
            var init = new ManagedProcess(request.Id, string.Empty, io, request.Terminal, null);
            try
            {
                init.Pid = await _runtime.CreateAsync(request.Id, bundle, io.ChildStdio, null, cancellationToken).ConfigureAwait(false);
            }
            catch (OciRuntimeException e)
            {
                await io.DisposeAsync().ConfigureAwait(false);
                throw new TtrpcException(StatusCode.Unknown, $"create {request.Id}: {e.Message}", e);
            }
            finally
            {
                io.CloseChildEnds();
            }

            _tasks[request.Id] = new ContainerTask(request.Id, bundle, init);
            WatchExit(init);
            _events.Publish("/tasks/create", new TaskCreate { ContainerId = request.Id, Bundle = bundle, Pid = (uint)init.Pid });
            return new CreateTaskResponse { Pid = (uint)init.Pid };
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task<StartResponse> StartAsync(StartRequest request, CancellationToken cancellationToken)
    {
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
            try
            {
                exec.Pid = await _runtime.ExecAsync(task.Id, processFile, Path.Combine(task.Bundle, $"exec-{exec.ExecId}.pid"), exec.Io.ChildStdio, null, cancellationToken)
                    .ConfigureAwait(false);
            }
            catch (OciRuntimeException e)
            {
                throw new TtrpcException(StatusCode.Unknown, $"exec {exec.ExecId} in task {task.Id}: {e.Message}", e);
            }
            finally
            {
                exec.Io.CloseChildEnds();
            }

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

    private async Task<Empty> ExecAsync(ExecProcessRequest request)
    {
        ValidateId(request.ExecId, "exec id");
        if (request.Terminal)
        {
            throw new TtrpcException(StatusCode.Unimplemented, "terminals are not supported by this agent yet");
        }

        ExtraData extra = UnpackExtraData(request.Spec, "Exec spec");
        string processJson = Encoding.UTF8.GetString(extra.JsonSpec.Span);
        try
        {
            using JsonDocument _ = JsonDocument.Parse(processJson);
        }
        catch (JsonException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"exec {request.ExecId}: the process spec is not JSON: {e.Message}");
        }

        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            if (task.Execs.ContainsKey(request.ExecId))
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"exec {request.ExecId} in task {task.Id}: already exists");
            }

            ProcessIo io = ProcessIo.Create(_stdio, extra.StdinPort, extra.StdoutPort, extra.StderrPort);
            task.Execs[request.ExecId] = new ManagedProcess(task.Id, request.ExecId, io, request.Terminal, processJson);
            _events.Publish("/tasks/exec-added", new TaskExecAdded { ContainerId = task.Id, ExecId = request.ExecId });
            return new Empty();
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task<StateResponse> StateAsync(StateRequest request)
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

    private async Task<Empty> KillAsync(KillRequest request, CancellationToken cancellationToken)
    {
        if (request.Signal is 0 or > 64)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"kill {request.Id}: signal {request.Signal} is not a signal");
        }

        ManagedProcess process;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            process = request.ExecId.Length == 0 ? task.Init : FindExec(task, request.ExecId);
        }
        finally
        {
            _lock.Release();
        }

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

    private async Task<WaitResponse> WaitAsync(WaitRequest request, CancellationToken cancellationToken)
    {
        ManagedProcess process;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            process = request.ExecId.Length == 0 ? task.Init : FindExec(task, request.ExecId);
        }
        finally
        {
            _lock.Release();
        }

        ProcessExit exit = await process.Exited.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new WaitResponse { ExitStatus = (uint)exit.ExitStatus, ExitedAt = Timestamp.FromDateTimeOffset(exit.ExitedAt) };
    }

    private async Task<DeleteResponse> DeleteAsync(DeleteRequest request, CancellationToken cancellationToken)
    {
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

    private async Task<PidsResponse> PidsAsync(PidsRequest request, CancellationToken cancellationToken)
    {
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

    private async Task<Empty> CloseIOAsync(CloseIORequest request)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ContainerTask task = Find(request.Id);
            ManagedProcess process = request.ExecId.Length == 0 ? task.Init : FindExec(task, request.ExecId);
            if (request.Stdin)
            {
                process.Io.CloseStdin();
            }

            return new Empty();
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task<Empty> UpdateAsync(UpdateTaskRequest request, CancellationToken cancellationToken)
    {
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

    private async Task<ConnectResponse> ConnectAsync(ConnectRequest request)
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

    // The container's root is always the bundle's rootfs directory (the mounted drive), whatever the host said.
    private static byte[] RootfsRelative(byte[] spec)
    {
        System.Text.Json.Nodes.JsonNode? root;
        try
        {
            root = System.Text.Json.Nodes.JsonNode.Parse(spec);
        }
        catch (JsonException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"the OCI spec is not JSON: {e.Message}");
        }

        if (root is not System.Text.Json.Nodes.JsonObject obj)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, "the OCI spec is not a JSON object");
        }

        obj["root"] ??= new System.Text.Json.Nodes.JsonObject();
        obj["root"]!["path"] = "rootfs";
        return Encoding.UTF8.GetBytes(obj.ToJsonString());
    }
}
