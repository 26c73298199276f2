using FirecrackerContainerd.Agent.Cgroups;
using FirecrackerContainerd.Agent.Events;
using FirecrackerContainerd.Agent.Oci;
using FirecrackerContainerd.Agent.Processes;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.TaskTypes;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>
/// containerd's task API inside the guest, as a front: each call reads its request, finds the container, has it
/// act, answers with the ttrpc status of what failed, and queues the event. One lock serialises the calls that
/// change containers with the reports of exits, so events leave in the order containerd expects.
/// </summary>
internal sealed class TaskService : ITaskService, IDisposable
{
    /// <summary>The type URL containerd gives cgroup v2 metrics (typeurl: the message's full name).</summary>
    private static readonly string MetricsTypeUrl = Protos.Cgroups.V2.Metrics.Descriptor.FullName;

    private readonly Dictionary<string, Container> _containers = new(StringComparer.Ordinal);
    private readonly TaskLock _lock = new();
    private readonly OciRuntime _runtime;
    private readonly ProcessLauncher _launcher;
    private readonly SpecRewriter _specs;
    private readonly EventQueue _events;
    private readonly OomWatcher _oom;
    private readonly ExitReporter _exits;
    private readonly GuestBundles _bundles;

    public TaskService(OciRuntime runtime, ChildReaper reaper, IStdioTransport stdio, EventQueue events, GuestBundles bundles, string? metadataDirectory = null)
    {
        _runtime = runtime;
        _launcher = new ProcessLauncher(runtime, stdio);
        _specs = new SpecRewriter(SpecCompatibility.RuntimeOf(runtime.Name), metadataDirectory);
        _events = events;
        _oom = new OomWatcher(id =>
        {
            AgentTrace.Write($"task {id}: OOM kill");
            _events.Publish("/tasks/oom", new TaskOOM { ContainerId = id });
        });
        _exits = new ExitReporter(reaper, _oom, events, _lock);
        _bundles = bundles;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _oom.Dispose();
        _lock.Dispose();
    }

    public Task<CreateTaskResponse> CreateAsync(CreateTaskRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        ContainerRequest create = TaskRequests.Parse(request);
        BundleDir bundle = _bundles.Of(create);
        byte[] config = _specs.RewriteConfig(create.Spec.Span, create.Stdio.Terminal, bundle, $"create {create.Id}: the OCI spec");
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            if (_containers.ContainsKey(create.Id))
            {
                throw new TaskException(TaskError.AlreadyExists, $"task {create.Id}: already exists");
            }

            Container container = await Container.CreateAsync(create, bundle, config, _runtime, _launcher, cancellationToken).ConfigureAwait(false);
            _containers[container.Id] = container;
            if (container.CgroupDirectory is { } cgroup)
            {
                _oom.Watch(container.Id, cgroup);
            }

            _exits.Watch(container.Init);
            _events.Publish("/tasks/create", new TaskCreate { ContainerId = container.Id, Bundle = bundle.RootPath, Pid = (uint)container.Init.Pid });
            return new CreateTaskResponse { Pid = (uint)container.Init.Pid };
        }
    });

    public Task<StartResponse> StartAsync(StartRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            ManagedProcess process = await Find(request.Id).StartAsync(request.ExecId, cancellationToken).ConfigureAwait(false);
            if (process.IsInit)
            {
                _events.Publish("/tasks/start", new TaskStart { ContainerId = process.ContainerId, Pid = (uint)process.Pid });
            }
            else
            {
                _exits.Watch(process);
                _events.Publish("/tasks/exec-started", new TaskExecStarted { ContainerId = process.ContainerId, ExecId = process.ExecId, Pid = (uint)process.Pid });
            }

            return new StartResponse { Pid = (uint)process.Pid };
        }
    });

    public Task<Empty> ExecAsync(ExecProcessRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        ExecRequest exec = TaskRequests.Parse(request);
        string process = _specs.RewriteProcess(exec.ProcessSpec.Span, exec.Stdio.Terminal, $"exec {exec.ExecId}: the process spec");
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            Find(exec.ContainerId).AddExec(exec.ExecId, process, exec.Stdio);
            _events.Publish("/tasks/exec-added", new TaskExecAdded { ContainerId = exec.ContainerId, ExecId = exec.ExecId });
            return new Empty();
        }
    });

    public Task<StateResponse> StateAsync(StateRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            Container container = Find(request.Id);
            ManagedProcess process = container.Process(request.ExecId);
            var state = new StateResponse
            {
                Id = container.Id,
                ExecId = request.ExecId,
                Bundle = container.Bundle.RootPath,
                Pid = (uint)process.Pid,
                Status = container.StatusOf(process),
                Terminal = process.Terminal,
            };
            if (process.Exited.IsCompletedSuccessfully)
            {
                state.ExitStatus = (uint)process.Exited.Result.ExitStatus;
                state.ExitedAt = Timestamp.FromDateTimeOffset(process.Exited.Result.ExitedAt);
            }

            return state;
        }
    });

    public Task<Empty> KillAsync(KillRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        int signal = TaskRequests.SignalOf(request);
        var (container, process) = await FindProcessAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);
        await container.KillAsync(process, signal, request.All, cancellationToken).ConfigureAwait(false);
        return new Empty();
    });

    public Task<WaitResponse> WaitAsync(WaitRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        var (_, process) = await FindProcessAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);
        ProcessExit exit = await process.Exited.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new WaitResponse { ExitStatus = (uint)exit.ExitStatus, ExitedAt = Timestamp.FromDateTimeOffset(exit.ExitedAt) };
    });

    public Task<DeleteResponse> DeleteAsync(DeleteRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            Container container = Find(request.Id);
            ManagedProcess process = await container.DeleteAsync(request.ExecId, cancellationToken).ConfigureAwait(false);
            if (process.IsInit)
            {
                _containers.Remove(container.Id);
                _oom.Forget(container.Id);
            }

            var response = new DeleteResponse { Pid = (uint)process.Pid };
            if (process.Exited.IsCompletedSuccessfully)
            {
                response.ExitStatus = (uint)process.Exited.Result.ExitStatus;
                response.ExitedAt = Timestamp.FromDateTimeOffset(process.Exited.Result.ExitedAt);
            }

            _events.Publish("/tasks/delete", new TaskDelete
            {
                ContainerId = container.Id,
                Id = request.ExecId,
                Pid = response.Pid,
                ExitStatus = response.ExitStatus,
                ExitedAt = response.ExitedAt,
            });
            return response;
        }
    });

    public Task<PidsResponse> PidsAsync(PidsRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        Container container = await FindAsync(request.Id, cancellationToken).ConfigureAwait(false);
        IReadOnlyList<int> pids = await container.PidsAsync(cancellationToken).ConfigureAwait(false);
        var response = new PidsResponse();
        response.Processes.AddRange(pids.Select(p => new ProcessInfo { Pid = (uint)p }));
        return response;
    });

    public Task<Empty> PauseAsync(PauseRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            await Find(request.Id).PauseAsync(cancellationToken).ConfigureAwait(false);
            _events.Publish("/tasks/paused", new TaskPaused { ContainerId = request.Id });
            return new Empty();
        }
    });

    public Task<Empty> ResumeAsync(ResumeRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            await Find(request.Id).ResumeAsync(cancellationToken).ConfigureAwait(false);
            _events.Publish("/tasks/resumed", new TaskResumed { ContainerId = request.Id });
            return new Empty();
        }
    });

    public Task<Empty> CloseIOAsync(CloseIORequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        var (_, process) = await FindProcessAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);
        if (request.Stdin)
        {
            await process.CloseStdinAsync(cancellationToken).ConfigureAwait(false);
        }

        return new Empty();
    });

    public Task<Empty> ResizePtyAsync(ResizePtyRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        var (columns, rows) = TaskRequests.SizeOf(request);
        var (_, process) = await FindProcessAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);
        process.ResizeTerminal(columns, rows);
        return new Empty();
    });

    public Task<StatsResponse> StatsAsync(StatsRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        Container container = await FindAsync(request.Id, cancellationToken).ConfigureAwait(false);
        return new StatsResponse { Stats = new Any { TypeUrl = MetricsTypeUrl, Value = container.Stats().ToByteString() } };
    });

    public Task<Empty> UpdateAsync(UpdateTaskRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        ReadOnlyMemory<byte> resources = TaskRequests.ResourcesOf(request);
        Container container = await FindAsync(request.Id, cancellationToken).ConfigureAwait(false);
        await container.UpdateAsync(resources, cancellationToken).ConfigureAwait(false);
        return new Empty();
    });

    public Task<ConnectResponse> ConnectAsync(ConnectRequest request, TtrpcCallContext context) => AnswerAsync(context, async cancellationToken =>
    {
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            var response = new ConnectResponse { ShimPid = (uint)Environment.ProcessId, Version = "2" };
            if (_containers.TryGetValue(request.Id, out Container? container))
            {
                response.TaskPid = (uint)container.Init.Pid;
            }

            return response;
        }
    });

    public Task<Empty> ShutdownAsync(ShutdownRequest request, TtrpcCallContext context) => Task.FromResult(new Empty());

    public Task<Empty> CheckpointAsync(CheckpointTaskRequest request, TtrpcCallContext context) =>
        throw new TtrpcException(StatusCode.Unimplemented, "checkpoints need VM snapshots, which are not supported yet");

    // The edge: what the agent's owners throw becomes the status containerd's errdefs expect.
    private static async Task<T> AnswerAsync<T>(TtrpcCallContext context, Func<CancellationToken, Task<T>> call)
    {
        try
        {
            return await call(context.CancellationToken).ConfigureAwait(false);
        }
        catch (TaskException e)
        {
            throw new TtrpcException(StatusOf(e.Error), e.Message, e);
        }
        catch (Exception e) when (e is UnsupportedSpecException or InvalidSpecException)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
        }
    }

    private static StatusCode StatusOf(TaskError error) => error switch
    {
        TaskError.NotFound => StatusCode.NotFound,
        TaskError.AlreadyExists => StatusCode.AlreadyExists,
        TaskError.InvalidArgument => StatusCode.InvalidArgument,
        TaskError.FailedPrecondition => StatusCode.FailedPrecondition,
        _ => StatusCode.Unknown,
    };

    private async Task<Container> FindAsync(string id, CancellationToken cancellationToken)
    {
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            return Find(id);
        }
    }

    // The process is looked up under the lock (Exec and Delete change the table); what is done to it need not wait.
    private async Task<(Container Container, ManagedProcess Process)> FindProcessAsync(string id, string execId, CancellationToken cancellationToken)
    {
        using (await _lock.EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            Container container = Find(id);
            return (container, container.Process(execId));
        }
    }

    private Container Find(string id) => _containers.TryGetValue(id, out Container? container)
        ? container
        : throw new TaskException(TaskError.NotFound, $"task {id}: not found");
}
