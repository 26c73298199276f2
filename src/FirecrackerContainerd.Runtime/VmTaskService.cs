using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Vmm.Machine;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime;

/// <summary>
/// The Task service of a VM's shim: the first Create boots the microVM (unless the control API's CreateVM
/// booted it already); each container's rootfs becomes an ext4 image swapped into a stub drive; every call is
/// forwarded to the guest agent, whose answers and events are checked and republished to containerd with
/// this shim's namespace.
/// </summary>
internal sealed partial class VmTaskService(ShimDaemonContext context) : ITaskService, IAsyncDisposable
{
    /// <summary>How long an exit waits for the process's output to reach containerd before it is reported anyway.</summary>
    private static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(10);

    /// <summary>How long the shim of a stopped VM waits for containerd to delete the VM's tasks before it exits anyway.</summary>
    private static readonly TimeSpan DeleteGrace = TimeSpan.FromSeconds(10);

    private readonly SemaphoreSlim _vmLock = new(1, 1);
    private readonly Lock _gate = new();
    private readonly Dictionary<string, TaskRecord> _tasks = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private MicroVm? _vm;
    private Task _eventPump = Task.CompletedTask;
    private Task _vmWatch = Task.CompletedTask;
    private bool _createVmCalled;

    // Set by CreateVM with ExitAfterAllTasksDeleted false: containerd's Shutdown after the last task is then ignored.
    private volatile bool _keepAlive;

    // Set while the control API holds the VM paused: the agent cannot answer, so State answers from the machine.
    private volatile bool _vmPaused;

    public async Task<CreateTaskResponse> CreateAsync(CreateTaskRequest request, TtrpcCallContext call)
    {
        ValidateId(request.Id, "container id");
        if (request.Checkpoint.Length > 0)
        {
            throw new TtrpcException(StatusCode.Unimplemented, "restoring from a checkpoint needs VM snapshots, which are not supported yet");
        }

        var bundle = new BundleDir(request.Bundle);
        string vmId = VmIdOf(bundle, request.Id);
        MicroVm vm = await EnsureVmAsync(vmId, call.CancellationToken).ConfigureAwait(false);
        var (slot, driveId) = vm.AcquireSlot(request.Id);
        string image = vm.ImagePath(slot);
        bool mounted = false;
        try
        {
            // Without mounts, the rootfs is already in place in the bundle (a spec that brings its own root).
            IReadOnlyList<Mount> mounts = request.Rootfs.Count > 0
                ? request.Rootfs
                : [new Mount { Type = "bind", Source = bundle.RootfsPath, Options = { "rbind", "ro" } }];
            try
            {
                await RootfsImage.CreateAsync(mounts, image, null, call.CancellationToken).ConfigureAwait(false);
            }
            catch (InvalidRootfsException e)
            {
                throw new TtrpcException(StatusCode.InvalidArgument, $"create {request.Id}: {e.Message}", e);
            }

            LogStep(context.Logger, request.Id, "rootfs image built");
            await vm.Machine.PatchDriveAsync(driveId, image, call.CancellationToken).ConfigureAwait(false);
            LogStep(context.Logger, request.Id, "drive patched");
            await vm.Agent.MountDriveAsync(driveId, BundleDir.VMBundleDir(request.Id).RootfsPath, call.CancellationToken).ConfigureAwait(false);
            mounted = true;
            LogStep(context.Logger, request.Id, "drive mounted in the guest");

            var ports = HostStdio.Ports(vm.NextPorts(), request.Stdin, request.Stdout, request.Stderr);
            var extra = new ExtraData
            {
                JsonSpec = ByteString.CopyFrom(bundle.ReadOCIConfig()),
                StdinPort = ports.Stdin,
                StdoutPort = ports.Stdout,
                StderrPort = ports.Stderr,
                DriveID = driveId,
            };
            uint pid = await vm.Agent.CreateAsync(new CreateTaskRequest
            {
                Id = request.Id,
                Bundle = BundleDir.VMBundleDir(request.Id).RootPath,
                Terminal = request.Terminal,
                Options = Any.Pack(extra),
            }, call.CancellationToken).ConfigureAwait(false);
            LogStep(context.Logger, request.Id, "the agent created the task");
            HostStdio io = await HostStdio.ConnectAsync(vm.Dir.FirecrackerVSockPath, ports, request.Stdin, request.Stdout, request.Stderr, call.CancellationToken)
                .ConfigureAwait(false);
            lock (_gate)
            {
                _tasks[request.Id] = new TaskRecord(request, slot, driveId, new ProcessRecord(io, pid, request.Stdin, request.Stdout, request.Stderr, request.Terminal));
            }

            // Published here, once the task is recorded: the agent's own create event can arrive before that.
            await context.Events.PublishAsync("/tasks/create", new TaskCreate
            {
                ContainerId = request.Id,
                Bundle = request.Bundle,
                Rootfs = { request.Rootfs },
                Io = new TaskIO { Stdin = request.Stdin, Stdout = request.Stdout, Stderr = request.Stderr, Terminal = request.Terminal },
                Checkpoint = request.Checkpoint,
                Pid = pid,
            }, call.CancellationToken).ConfigureAwait(false);
            LogCreated(context.Logger, request.Id, vmId, pid);
            return new CreateTaskResponse { Pid = pid };
        }
        catch
        {
            if (mounted)
            {
                await IgnoreFailure(() => vm.Agent.UnmountDriveAsync(driveId, CancellationToken.None)).ConfigureAwait(false);
            }

            vm.ReleaseSlot(slot);
            File.Delete(image);
            throw;
        }
    }

    public async Task<StartResponse> StartAsync(StartRequest request, TtrpcCallContext call)
    {
        var (_, process) = Find(request.Id, request.ExecId);
        uint pid = await Vm.Agent.StartAsync(request, call.CancellationToken).ConfigureAwait(false);
        lock (_gate)
        {
            process.Pid = pid;
            process.Status = Protos.Containerd.TaskTypes.Status.Running;
        }

        LogStarted(context.Logger, request.Id, request.ExecId, pid);
        return new StartResponse { Pid = pid };
    }

    /// <summary>
    /// Answered from what this shim saw, without a round trip into the guest: containerd asks for State
    /// with a short deadline (2 s when listing tasks), which a loaded machine under TCG can miss.
    /// </summary>
    public async Task<StateResponse> StateAsync(StateRequest request, TtrpcCallContext call)
    {
        var (task, process) = Find(request.Id, request.ExecId);
        bool vmPaused = _vmPaused && _vm is { } paused && await paused.Machine.GetStateAsync(call.CancellationToken).ConfigureAwait(false) == MachineState.Paused;
        lock (_gate)
        {
            var state = new StateResponse
            {
                Id = request.Id,
                ExecId = request.ExecId,
                Bundle = task.Request.Bundle,
                Pid = process.Pid,
                Status = process.Status,
                Stdin = process.Stdin,
                Stdout = process.Stdout,
                Stderr = process.Stderr,
                Terminal = process.Terminal,
            };
            if (process.Exit.Task.IsCompletedSuccessfully)
            {
                WaitResponse exit = process.Exit.Task.Result;
                state.Status = Protos.Containerd.TaskTypes.Status.Stopped;
                state.ExitStatus = exit.ExitStatus;
                state.ExitedAt = exit.ExitedAt;
            }
            else if (vmPaused && state.Status == Protos.Containerd.TaskTypes.Status.Running)
            {
                // The whole VM is frozen, and every process in it with the VM.
                state.Status = Protos.Containerd.TaskTypes.Status.Paused;
            }

            return state;
        }
    }

    public async Task<WaitResponse> WaitAsync(WaitRequest request, TtrpcCallContext call)
    {
        var (_, process) = Find(request.Id, request.ExecId);
        return await process.Exit.Task.WaitAsync(call.CancellationToken).ConfigureAwait(false);
    }

    public async Task<Empty> KillAsync(KillRequest request, TtrpcCallContext call)
    {
        var (_, process) = Find(request.Id, request.ExecId);
        if (process.Exit.Task.IsCompleted)
        {
            throw new TtrpcException(StatusCode.NotFound, $"process {request.Id}/{request.ExecId}: not running (already exited)");
        }

        await Vm.Agent.KillAsync(request, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    public async Task<DeleteResponse> DeleteAsync(DeleteRequest request, TtrpcCallContext call)
    {
        var (task, process) = Find(request.Id, request.ExecId);
        DeleteResponse response;
        if (_vm is { } vm && !vm.Machine.Exited.IsCompleted)
        {
            response = await vm.Agent.DeleteAsync(request, call.CancellationToken).ConfigureAwait(false);
        }
        else
        {
            WaitResponse exit = process.Exit.Task.IsCompleted ? process.Exit.Task.Result : new WaitResponse { ExitStatus = 137 };
            response = new DeleteResponse { Pid = process.Pid, ExitStatus = exit.ExitStatus, ExitedAt = exit.ExitedAt };
        }

        await process.Io.DisposeAsync().ConfigureAwait(false);
        if (request.ExecId.Length > 0)
        {
            lock (_gate)
            {
                task.Execs.Remove(request.ExecId);
            }

            return response;
        }

        if (_vm is { } owner)
        {
            if (!owner.Machine.Exited.IsCompleted)
            {
                await IgnoreFailure(() => owner.Agent.UnmountDriveAsync(task.DriveId, call.CancellationToken)).ConfigureAwait(false);
            }

            owner.ReleaseSlot(task.Slot);
            File.Delete(owner.ImagePath(task.Slot));
        }

        lock (_gate)
        {
            _tasks.Remove(request.Id);
        }

        await context.Events.PublishAsync("/tasks/delete", new TaskDelete
        {
            ContainerId = request.Id,
            Pid = response.Pid,
            ExitStatus = response.ExitStatus,
            ExitedAt = response.ExitedAt,
        }, call.CancellationToken).ConfigureAwait(false);
        return response;
    }

    public async Task<Empty> ExecAsync(ExecProcessRequest request, TtrpcCallContext call)
    {
        ValidateId(request.ExecId, "exec id");
        var (task, _) = Find(request.Id, string.Empty);
        if (request.Spec is null || request.Spec.Value.IsEmpty)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"exec {request.ExecId}: no process spec");
        }

        MicroVm vm = Vm;
        var ports = HostStdio.Ports(vm.NextPorts(), request.Stdin, request.Stdout, request.Stderr);
        var extra = new ExtraData { JsonSpec = request.Spec.Value, StdinPort = ports.Stdin, StdoutPort = ports.Stdout, StderrPort = ports.Stderr };
        await vm.Agent.ExecAsync(new ExecProcessRequest
        {
            Id = request.Id,
            ExecId = request.ExecId,
            Terminal = request.Terminal,
            Spec = Any.Pack(extra),
        }, call.CancellationToken).ConfigureAwait(false);
        HostStdio io = await HostStdio.ConnectAsync(vm.Dir.FirecrackerVSockPath, ports, request.Stdin, request.Stdout, request.Stderr, call.CancellationToken)
            .ConfigureAwait(false);
        lock (_gate)
        {
            task.Execs[request.ExecId] = new ProcessRecord(io, 0, request.Stdin, request.Stdout, request.Stderr, request.Terminal);
        }

        return new Empty();
    }

    public async Task<PidsResponse> PidsAsync(PidsRequest request, TtrpcCallContext call)
    {
        _ = Find(request.Id, string.Empty);
        return await Vm.Agent.PidsAsync(request, call.CancellationToken).ConfigureAwait(false);
    }

    public async Task<Empty> PauseAsync(PauseRequest request, TtrpcCallContext call)
    {
        var (task, _) = Find(request.Id, string.Empty);
        await Vm.Agent.PauseAsync(request, call.CancellationToken).ConfigureAwait(false);
        lock (_gate)
        {
            task.Init.Status = Protos.Containerd.TaskTypes.Status.Paused;
        }

        return new Empty();
    }

    public async Task<Empty> ResumeAsync(ResumeRequest request, TtrpcCallContext call)
    {
        var (task, _) = Find(request.Id, string.Empty);
        await Vm.Agent.ResumeAsync(request, call.CancellationToken).ConfigureAwait(false);
        lock (_gate)
        {
            task.Init.Status = Protos.Containerd.TaskTypes.Status.Running;
        }

        return new Empty();
    }

    public Task<Empty> CheckpointAsync(CheckpointTaskRequest request, TtrpcCallContext call) =>
        throw new TtrpcException(StatusCode.Unimplemented, "checkpoints need VM snapshots, which are not supported yet");

    public async Task<Empty> ResizePtyAsync(ResizePtyRequest request, TtrpcCallContext call)
    {
        _ = Find(request.Id, request.ExecId);
        await Vm.Agent.ResizePtyAsync(request, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    public async Task<Empty> CloseIOAsync(CloseIORequest request, TtrpcCallContext call)
    {
        _ = Find(request.Id, request.ExecId);
        await Vm.Agent.CloseIOAsync(request, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    public async Task<Empty> UpdateAsync(UpdateTaskRequest request, TtrpcCallContext call)
    {
        _ = Find(request.Id, string.Empty);
        await Vm.Agent.UpdateAsync(request, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    public async Task<StatsResponse> StatsAsync(StatsRequest request, TtrpcCallContext call)
    {
        _ = Find(request.Id, string.Empty);
        return await Vm.Agent.StatsAsync(request, call.CancellationToken).ConfigureAwait(false);
    }

    public Task<ConnectResponse> ConnectAsync(ConnectRequest request, TtrpcCallContext call)
    {
        var response = new ConnectResponse { ShimPid = (uint)Environment.ProcessId, Version = "2" };
        lock (_gate)
        {
            if (_tasks.TryGetValue(request.Id, out TaskRecord? task))
            {
                response.TaskPid = task.Init.Pid;
            }
        }

        return Task.FromResult(response);
    }

    public async Task<Empty> ShutdownAsync(ShutdownRequest request, TtrpcCallContext call)
    {
        lock (_gate)
        {
            if ((_tasks.Count > 0 || _keepAlive) && !request.Now)
            {
                return new Empty();
            }
        }

        if (_vm is { } vm)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
            await IgnoreFailure(() => vm.StopAsync(TimeSpan.Zero, call.CancellationToken)).ConfigureAwait(false);
            await IgnoreFailure(async () => await vm.DisposeAsync().ConfigureAwait(false)).ConfigureAwait(false);
        }

        context.Lifetime.RequestExit($"Shutdown requested for {request.Id}");
        return new Empty();
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_vm is { } vm)
        {
            await vm.DisposeAsync().ConfigureAwait(false);
        }

        await _eventPump.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _vmLock.Dispose();
        _stopping.Dispose();
    }

    private MicroVm Vm => _vm ?? throw new TtrpcException(StatusCode.FailedPrecondition, "no microVM is running in this shim");

    private async Task<MicroVm> EnsureVmAsync(string vmId, CancellationToken cancellationToken)
    {
        await _vmLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_vm is { } running)
            {
                if (running.Machine.VmId != vmId)
                {
                    throw new TtrpcException(StatusCode.FailedPrecondition, $"this shim runs vm \"{running.Machine.VmId}\", not \"{vmId}\"");
                }

                if (running.Machine.Exited.IsCompleted)
                {
                    throw new TtrpcException(StatusCode.FailedPrecondition, $"vm \"{vmId}\" has exited");
                }

                return running;
            }

            return await BootAsync(vmId, LoadConfig(), VmDevices.None, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _vmLock.Release();
        }
    }

    /// <summary>The VM this shim runs, or null before it booted.</summary>
    internal MicroVm? CurrentVm => _vm;

    /// <summary>
    /// The control API's CreateVM: boots the VM now with <paramref name="config"/> and <paramref name="devices"/>. Only
    /// once per shim, and not once a task's Create booted it. <paramref name="keepAlive"/> keeps the VM and the shim
    /// after the last task.
    /// </summary>
    internal async Task<MicroVm> CreateVmAsync(string vmId, RuntimeConfig config, VmDevices devices, bool keepAlive, CancellationToken cancellationToken)
    {
        await _vmLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_createVmCalled || _vm is not null)
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"vm \"{vmId}\" was already created in this shim");
            }

            _createVmCalled = true;
            _keepAlive = keepAlive;
            return await BootAsync(vmId, config, devices, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _vmLock.Release();
        }
    }

    /// <summary>Stops the vCPUs of the running VM; its tasks read as paused until <see cref="ResumeVmAsync"/>.</summary>
    internal async Task PauseVmAsync(CancellationToken cancellationToken)
    {
        MicroVm vm = LiveVm();
        await vm.Machine.PauseAsync(cancellationToken).ConfigureAwait(false);
        _vmPaused = true;
    }

    /// <summary>Lets the paused VM run again.</summary>
    internal async Task ResumeVmAsync(CancellationToken cancellationToken)
    {
        MicroVm vm = LiveVm();
        await vm.Machine.ResumeAsync(cancellationToken).ConfigureAwait(false);
        _vmPaused = false;
    }

    /// <summary>
    /// The control API's StopVM: stops the VM (the guest gets <paramref name="gracePeriod"/> to power off, a paused
    /// one none) and reports every process as killed (137) to containerd. The shim then waits (bounded) for
    /// containerd to delete those tasks, which it answers from what it recorded, removes the VM directory and exits.
    /// </summary>
    internal async Task StopVmAsync(TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        MicroVm vm = _vm ?? throw new TtrpcException(StatusCode.NotFound, "no vm was created in this shim");
        await _stopping.CancelAsync().ConfigureAwait(false);
        await vm.StopAsync(_vmPaused ? TimeSpan.Zero : gracePeriod, cancellationToken).ConfigureAwait(false);
        await _vmWatch.ConfigureAwait(false);
    }

    private async Task ExitOnceTasksAreDeletedAsync(MicroVm vm)
    {
        var deadline = DateTimeOffset.UtcNow + DeleteGrace;
        while (DateTimeOffset.UtcNow < deadline)
        {
            lock (_gate)
            {
                if (_tasks.Count == 0)
                {
                    break;
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
        }

        await IgnoreFailure(async () => await vm.DisposeAsync().ConfigureAwait(false)).ConfigureAwait(false);
        context.Lifetime.RequestExit($"vm {vm.Machine.VmId} created by CreateVM has exited");
    }

    /// <summary>Ends the shim after a failed CreateVM: a shim is good for one VM only.</summary>
    internal void ExitAfterFailedCreate(string reason) => context.Lifetime.RequestExit(reason);

    private MicroVm LiveVm()
    {
        MicroVm vm = _vm ?? throw new TtrpcException(StatusCode.NotFound, "no vm was created in this shim");
        return vm.Machine.Exited.IsCompleted
            ? throw new TtrpcException(StatusCode.FailedPrecondition, $"vm \"{vm.Machine.VmId}\" has exited")
            : vm;
    }

    private static RuntimeConfig LoadConfig()
    {
        try
        {
            return RuntimeConfig.Load();
        }
        catch (InvalidOperationException e)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, e.Message, e);
        }
    }

    // Called with _vmLock held.
    private async Task<MicroVm> BootAsync(string vmId, RuntimeConfig config, VmDevices devices, CancellationToken cancellationToken)
    {
        MicroVm vm = await MicroVm.StartAsync(config, devices, context.Arguments.Namespace, vmId, context.Logger, cancellationToken).ConfigureAwait(false);
        _vm = vm;
        _eventPump = Task.Run(() => PumpEventsAsync(vm.Agent), CancellationToken.None);
        _vmWatch = Task.Run(() => WatchVmAsync(vm), CancellationToken.None);
        LogVmStarted(context.Logger, vmId, vm.Dir.RootPath);
        return vm;
    }

    private async Task PumpEventsAsync(AgentClient agent)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Envelope envelope;
            try
            {
                envelope = await agent.NextEventAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TtrpcException or OperationCanceledException or IOException)
            {
                return; // the agent connection is gone; the VM watcher reports the exits
            }
            catch (InvalidDataException e)
            {
                LogBadEvent(context.Logger, e.Message);
                continue;
            }

            try
            {
                await RepublishAsync(envelope).ConfigureAwait(false);
            }
            catch (InvalidProtocolBufferException e)
            {
                LogBadEvent(context.Logger, e.Message);
            }
        }
    }

    private async Task RepublishAsync(Envelope envelope)
    {
        string type = envelope.Event.TypeUrl["containerd.events.".Length..];
        IMessage? message = type switch
        {
            nameof(TaskStart) => Known(TaskStart.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskExecAdded) => Known(TaskExecAdded.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskExecStarted) => Known(TaskExecStarted.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskPaused) => Known(TaskPaused.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskResumed) => Known(TaskResumed.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskOOM) => Known(TaskOOM.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskExit) => await OnExitAsync(TaskExit.Parser.ParseFrom(envelope.Event.Value)).ConfigureAwait(false),
            _ => null, // TaskCreate and TaskDelete are published by this shim itself
        };
        if (message is not null)
        {
            await context.Events.PublishAsync(envelope.Topic, message, _stopping.Token).ConfigureAwait(false);
        }
    }

    private T? Known<T>(T message, Func<T, string> containerId)
        where T : class, IMessage
    {
        lock (_gate)
        {
            return _tasks.ContainsKey(containerId(message)) ? message : null;
        }
    }

    private async Task<TaskExit?> OnExitAsync(TaskExit exit)
    {
        ProcessRecord? process;
        lock (_gate)
        {
            process = !_tasks.TryGetValue(exit.ContainerId, out TaskRecord? task) ? null
                : exit.Id == exit.ContainerId ? task.Init
                : task.Execs.GetValueOrDefault(exit.Id);
        }

        LogGuestExit(context.Logger, exit.ContainerId, exit.Id, exit.ExitStatus, process is not null);
        if (process is null || exit.ExitStatus > 255)
        {
            return null;
        }

        // containerd closes the task's IO when it sees the exit: let the output reach it first.
        await Task.WhenAny(process.Io.OutputDone, Task.Delay(OutputGrace)).ConfigureAwait(false);
        process.Exit.TrySetResult(new WaitResponse { ExitStatus = exit.ExitStatus, ExitedAt = exit.ExitedAt ?? Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) });
        return exit;
    }

    // A VMM that dies takes every process with it: each gets an exit, as if killed.
    private async Task WatchVmAsync(MicroVm vm)
    {
        VmExit exit = await vm.Machine.Exited.ConfigureAwait(false);
        LogVmExited(context.Logger, vm.Machine.VmId, exit.ExitCode);
        List<(string ContainerId, string Id, ProcessRecord Process)> orphans;
        lock (_gate)
        {
            orphans = _tasks.Values
                .SelectMany(t => t.Execs.Select(e => (t.Request.Id, e.Key, e.Value)).Prepend((t.Request.Id, t.Request.Id, t.Init)))
                .Where(p => !p.Item3.Exit.Task.IsCompleted)
                .ToList();
        }

        Timestamp now = Timestamp.FromDateTimeOffset(exit.ExitedAt);
        foreach (var (containerId, id, process) in orphans)
        {
            if (process.Exit.TrySetResult(new WaitResponse { ExitStatus = 137, ExitedAt = now }))
            {
                await IgnoreFailure(() => context.Events.PublishAsync("/tasks/exit",
                    new TaskExit { ContainerId = containerId, Id = id, Pid = process.Pid, ExitStatus = 137, ExitedAt = now }, CancellationToken.None)).ConfigureAwait(false);
            }
        }

        // A VM created through the control API ends its shim when it ends (StopVM or a dead VMM), as upstream's.
        if (_createVmCalled)
        {
            _ = Task.Run(() => ExitOnceTasksAreDeletedAsync(vm), CancellationToken.None);
        }
    }

    private (TaskRecord Task, ProcessRecord Process) Find(string id, string execId)
    {
        lock (_gate)
        {
            if (!_tasks.TryGetValue(id, out TaskRecord? task))
            {
                throw new TtrpcException(StatusCode.NotFound, $"task {id} not found");
            }

            if (execId.Length == 0)
            {
                return (task, task.Init);
            }

            return task.Execs.TryGetValue(execId, out ProcessRecord? exec)
                ? (task, exec)
                : throw new TtrpcException(StatusCode.NotFound, $"exec {execId} of task {id} not found");
        }
    }

    private static string VmIdOf(BundleDir bundle, string taskId)
    {
        try
        {
            return VmIdentity.OfThisProcess.Resolve(bundle.RootPath, taskId);
        }
        catch (InvalidVmIdException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
        }
    }

    private static void ValidateId(string id, string what)
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

    private async Task IgnoreFailure(Func<Task> action)
    {
        try
        {
            await action().ConfigureAwait(false);
        }
        catch (Exception e) when (e is TtrpcException or IOException or InvalidOperationException or OperationCanceledException or TimeoutException)
        {
            LogIgnored(context.Logger, $"{e.GetType().Name}: {e.Message}\n{e.StackTrace}");
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "task {Id} created in vm {VmId}, guest pid {Pid}")]
    private static partial void LogCreated(ILogger logger, string id, string vmId, uint pid);

    [LoggerMessage(Level = LogLevel.Debug, Message = "started {Id}/{ExecId}, guest pid {Pid}")]
    private static partial void LogStarted(ILogger logger, string id, string execId, uint pid);

    [LoggerMessage(Level = LogLevel.Debug, Message = "the guest reports exit of {ContainerId}/{Id} with status {Status} (known: {Known})")]
    private static partial void LogGuestExit(ILogger logger, string containerId, string id, uint status, bool known);

    [LoggerMessage(Level = LogLevel.Debug, Message = "create {Id}: {Step}")]
    private static partial void LogStep(ILogger logger, string id, string step);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId} is up in {Dir}")]
    private static partial void LogVmStarted(ILogger logger, string vmId, string dir);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: the VMM exited with status {ExitCode}")]
    private static partial void LogVmExited(ILogger logger, string vmId, int exitCode);

    [LoggerMessage(Level = LogLevel.Warning, Message = "dropping an event from the guest: {Reason}")]
    private static partial void LogBadEvent(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "clean-up step failed: {Reason}")]
    private static partial void LogIgnored(ILogger logger, string reason);

    /// <summary>A container this shim created in its VM.</summary>
    private sealed record TaskRecord(CreateTaskRequest Request, int Slot, string DriveId, ProcessRecord Init)
    {
        public Dictionary<string, ProcessRecord> Execs { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>
    /// One process: its host-side stdio, what containerd asked for it, its state as this shim saw it change
    /// (created, started, paused), and its exit, known once the guest (or the VMM's death) reports it.
    /// </summary>
    private sealed class ProcessRecord(HostStdio io, uint pid, string stdin, string stdout, string stderr, bool terminal)
    {
        public HostStdio Io { get; } = io;

        /// <summary>The guest pid: an exec has one only once started.</summary>
        public uint Pid { get; set; } = pid;

        public Protos.Containerd.TaskTypes.Status Status { get; set; } = Protos.Containerd.TaskTypes.Status.Created;

        public string Stdin { get; } = stdin;

        public string Stdout { get; } = stdout;

        public string Stderr { get; } = stderr;

        public bool Terminal { get; } = terminal;

        public TaskCompletionSource<WaitResponse> Exit { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
