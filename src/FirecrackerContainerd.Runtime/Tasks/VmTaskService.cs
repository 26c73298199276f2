using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Pods;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.Runtime.Tracing;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;
using TaskStatus = FirecrackerContainerd.Protos.Containerd.TaskTypes.Status;

namespace FirecrackerContainerd.Runtime.Tasks;

/// <summary>
/// The Task service of a VM's shim, a thin front: each call finds its task in the <see cref="TaskTable"/>, calls the
/// VM (<see cref="IShimVm"/>), the container's rootfs or the guest agent, maps what fails to a status, and publishes
/// the event containerd expects. The first Create boots the VM (unless the control API's CreateVM did).
/// </summary>
internal sealed partial class VmTaskService(
    ShimDaemonContext context, IShimVm vm, TaskTable tasks, VmIdentity identity, RootfsImageBuilder buildRootfs) : ITaskService
{
    public async Task<CreateTaskResponse> CreateAsync(CreateTaskRequest request, TtrpcCallContext call)
    {
        ValidateId(request.Id, "container id");
        if (request.Checkpoint.Length > 0)
        {
            throw new TtrpcException(StatusCode.Unimplemented, "restoring from a checkpoint needs VM snapshots, which are not supported yet");
        }

        string vmId;
        try
        {
            vmId = identity.Resolve(request.Bundle, request.Id);
        }
        catch (InvalidVmIdException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
        }

        long begun = PhaseTrace.Now();
        PodTask task = PodTask.Read(request.Id, request.Bundle);
        MicroVm running = await task.EnsureVmAsync(vm, vmId, call.CancellationToken).ConfigureAwait(false);
        string subject = "task " + request.Id;
        running.Trace.Phase(subject, "VM ready", begun);
        long step = PhaseTrace.Now();
        ContainerRootfs rootfs;
        try
        {
            rootfs = await ContainerRootfs.AttachAsync(running, request, buildRootfs, context.Logger, call.CancellationToken).ConfigureAwait(false);
            running.Trace.Phase(subject, rootfs.BlockFile is null ? "rootfs copied and attached" : "rootfs attached (snapshot's block file)", step);
        }
        catch (InvalidRootfsException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"create {request.Id}: {e.Message}", e);
        }

        ProcessRecord init;
        try
        {
            step = PhaseTrace.Now();
            init = await GuestProcesses.CreateInitAsync(running, request, task.GuestSpec, rootfs.DriveId, call.CancellationToken).ConfigureAwait(false);
            running.Trace.Phase(subject, "agent create and stdio", step);
            LogStep(context.Logger, request.Id, "the agent created the task");
            tasks.Add(new TaskRecord(request, rootfs, init));
        }
        catch
        {
            await rootfs.DetachAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        // Published here, once the task is recorded: the agent's own create event can arrive before that.
        await context.Events.PublishAsync("/tasks/create", new TaskCreate
        {
            ContainerId = request.Id,
            Bundle = request.Bundle,
            Rootfs = { request.Rootfs },
            Io = new TaskIO { Stdin = request.Stdin, Stdout = request.Stdout, Stderr = request.Stderr, Terminal = request.Terminal },
            Checkpoint = request.Checkpoint,
            Pid = init.Pid,
        }, call.CancellationToken).ConfigureAwait(false);
        LogCreated(context.Logger, request.Id, vmId, init.Pid);
        running.Trace.Phase(subject, "create", begun);
        return new CreateTaskResponse { Pid = init.Pid };
    }

    public async Task<StartResponse> StartAsync(StartRequest request, TtrpcCallContext call)
    {
        var (_, process) = tasks.Find(request.Id, request.ExecId);
        long begun = PhaseTrace.Now();
        MicroVm running = vm.Running;
        uint pid = await running.Agent.StartAsync(request, call.CancellationToken).ConfigureAwait(false);
        process.Started(pid);
        LogStarted(context.Logger, request.Id, request.ExecId, pid);
        if (running.Trace.Enabled)
        {
            string subject = request.ExecId.Length == 0 ? "task " + request.Id : $"exec {request.Id}/{request.ExecId}";
            running.Trace.Phase(subject, "start", begun);
            _ = TraceOutputAndExitAsync(running.Trace, subject, process, begun);
        }

        return new StartResponse { Pid = pid };
    }

    /// <summary>
    /// Answered from what this shim saw, without a round trip into the guest: containerd asks for State
    /// with a short deadline (2 s when listing tasks), which a loaded machine under TCG can miss.
    /// </summary>
    public async Task<StateResponse> StateAsync(StateRequest request, TtrpcCallContext call)
    {
        var (task, process) = tasks.Find(request.Id, request.ExecId);
        bool vmPaused = await vm.IsPausedAsync(call.CancellationToken).ConfigureAwait(false);
        return process.State(request, task.Request.Bundle, vmPaused);
    }

    public async Task<WaitResponse> WaitAsync(WaitRequest request, TtrpcCallContext call)
    {
        var (_, process) = tasks.Find(request.Id, request.ExecId);
        return await process.WaitAsync(call.CancellationToken).ConfigureAwait(false);
    }

    public async Task<Empty> KillAsync(KillRequest request, TtrpcCallContext call)
    {
        var (_, process) = tasks.Find(request.Id, request.ExecId);
        if (process.HasExited)
        {
            throw new TtrpcException(StatusCode.NotFound, $"process {request.Id}/{request.ExecId}: not running (already exited)");
        }

        await vm.Running.Agent.KillAsync(request, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>Deleted in the guest while the VM runs; answered from the recorded exit once the VM is gone.</summary>
    public async Task<DeleteResponse> DeleteAsync(DeleteRequest request, TtrpcCallContext call)
    {
        var (task, process) = tasks.Find(request.Id, request.ExecId);
        long begun = PhaseTrace.Now();
        PhaseTrace trace = vm.Current?.Trace ?? PhaseTrace.Off;
        DeleteResponse response = vm.Current is { Machine.Exited.IsCompleted: false } running
            ? await running.Agent.DeleteAsync(request, call.CancellationToken).ConfigureAwait(false)
            : process.Deleted();
        await process.Io.DisposeAsync().ConfigureAwait(false);
        if (request.ExecId.Length > 0)
        {
            tasks.RemoveExec(task, request.ExecId);
            return response;
        }

        long detach = PhaseTrace.Now();
        await task.Rootfs.DetachAsync(call.CancellationToken).ConfigureAwait(false);
        trace.Phase("task " + request.Id, "rootfs detached", detach);
        tasks.Remove(request.Id);
        await context.Events.PublishAsync("/tasks/delete", new TaskDelete
        {
            ContainerId = request.Id,
            Pid = response.Pid,
            ExitStatus = response.ExitStatus,
            ExitedAt = response.ExitedAt,
        }, call.CancellationToken).ConfigureAwait(false);
        trace.Phase("task " + request.Id, "delete", begun);
        return response;
    }

    public async Task<Empty> ExecAsync(ExecProcessRequest request, TtrpcCallContext call)
    {
        ValidateId(request.ExecId, "exec id");
        var (task, _) = tasks.Find(request.Id, string.Empty);
        if (request.Spec is null || request.Spec.Value.IsEmpty)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"exec {request.ExecId}: no process spec");
        }

        long begun = PhaseTrace.Now();
        MicroVm running = vm.Running;
        tasks.AddExec(task, await GuestProcesses.ExecAsync(running, request, call.CancellationToken).ConfigureAwait(false));
        running.Trace.Phase($"exec {request.Id}/{request.ExecId}", "agent exec and stdio", begun);
        return new Empty();
    }

    public async Task<PidsResponse> PidsAsync(PidsRequest request, TtrpcCallContext call)
    {
        _ = tasks.Find(request.Id, string.Empty);
        return await vm.Running.Agent.PidsAsync(request, call.CancellationToken).ConfigureAwait(false);
    }

    public async Task<Empty> PauseAsync(PauseRequest request, TtrpcCallContext call)
    {
        var (task, _) = tasks.Find(request.Id, string.Empty);
        await vm.Running.Agent.PauseAsync(request, call.CancellationToken).ConfigureAwait(false);
        task.Init.SetStatus(TaskStatus.Paused);
        return new Empty();
    }

    public async Task<Empty> ResumeAsync(ResumeRequest request, TtrpcCallContext call)
    {
        var (task, _) = tasks.Find(request.Id, string.Empty);
        await vm.Running.Agent.ResumeAsync(request, call.CancellationToken).ConfigureAwait(false);
        task.Init.SetStatus(TaskStatus.Running);
        return new Empty();
    }

    public Task<Empty> CheckpointAsync(CheckpointTaskRequest request, TtrpcCallContext call) =>
        throw new TtrpcException(StatusCode.Unimplemented, "checkpoints need VM snapshots, which are not supported yet");

    public async Task<Empty> ResizePtyAsync(ResizePtyRequest request, TtrpcCallContext call)
    {
        _ = tasks.Find(request.Id, request.ExecId);
        await vm.Running.Agent.ResizePtyAsync(request, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    public async Task<Empty> CloseIOAsync(CloseIORequest request, TtrpcCallContext call)
    {
        _ = tasks.Find(request.Id, request.ExecId);
        await vm.Running.Agent.CloseIOAsync(request, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    public async Task<Empty> UpdateAsync(UpdateTaskRequest request, TtrpcCallContext call)
    {
        _ = tasks.Find(request.Id, string.Empty);
        await vm.Running.Agent.UpdateAsync(request, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    public async Task<StatsResponse> StatsAsync(StatsRequest request, TtrpcCallContext call)
    {
        _ = tasks.Find(request.Id, string.Empty);
        return await vm.Running.Agent.StatsAsync(request, call.CancellationToken).ConfigureAwait(false);
    }

    public Task<ConnectResponse> ConnectAsync(ConnectRequest request, TtrpcCallContext call) =>
        Task.FromResult(new ConnectResponse
        {
            ShimPid = (uint)Environment.ProcessId,
            TaskPid = tasks.TryFind(request.Id)?.Init.Pid ?? 0,
            Version = "2",
        });

    public async Task<Empty> ShutdownAsync(ShutdownRequest request, TtrpcCallContext call)
    {
        await vm.ShutdownAsync(request.Now, $"Shutdown requested for {request.Id}", call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    // The guest's first output and the exit, timed from the Start call; neither may ever come.
    private static async Task TraceOutputAndExitAsync(PhaseTrace trace, string subject, ProcessRecord process, long started)
    {
        Task exit = process.Exit;
        Task<long> output = process.Io.FirstOutput;
        if (await Task.WhenAny(output, exit).ConfigureAwait(false) == output && output.IsCompletedSuccessfully)
        {
            trace.Measured(subject, "start to first output", (double)(output.Result - started) * 1000 / System.Diagnostics.Stopwatch.Frequency);
        }

        await exit.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        trace.Phase(subject, "start to exit", started);
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

    [LoggerMessage(Level = LogLevel.Information, Message = "task {Id} created in vm {VmId}, guest pid {Pid}")]
    private static partial void LogCreated(ILogger logger, string id, string vmId, uint pid);

    [LoggerMessage(Level = LogLevel.Debug, Message = "started {Id}/{ExecId}, guest pid {Pid}")]
    private static partial void LogStarted(ILogger logger, string id, string execId, uint pid);

    [LoggerMessage(Level = LogLevel.Debug, Message = "create {Id}: {Step}")]
    private static partial void LogStep(ILogger logger, string id, string step);
}
