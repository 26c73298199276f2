using System.Diagnostics;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Tasks;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Vmm.Machine;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// The one VM a shim serves, and its life: booted by a task's first Create or by the control API's CreateVM, paused,
/// resumed and stopped; its guest events pumped to containerd; watched, so that a VMM that dies gives every process
/// an exit (137, as if killed); and, for a VM made by CreateVM, the shim's exit once the VM has ended.
/// </summary>
internal sealed partial class ShimVm : IShimVm, IAsyncDisposable
{
    /// <summary>How long the shim of an ended VM made by CreateVM waits for the deletes it expects before it exits anyway.</summary>
    private static readonly TimeSpan DefaultDeleteGrace = TimeSpan.FromSeconds(10);

    private readonly ShimDaemonContext _context;
    private readonly TaskTable _tasks;
    private readonly VmBoot _boot;
    private readonly Func<RuntimeConfig> _loadConfig;
    private readonly TimeSpan _deleteGrace;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private MicroVm? _vm;
    private Task _eventPump = Task.CompletedTask;
    private Task _watch = Task.CompletedTask;
    private bool _createdByControlApi;

    // Set by CreateVM with ExitAfterAllTasksDeleted false: containerd's Shutdown after the last task is then ignored.
    private volatile bool _keepAlive;

    // Set while the control API holds the VM paused: the agent cannot answer, so State answers from the machine.
    private volatile bool _paused;

    /// <summary>The shim's VM, booted with <see cref="MicroVm.StartAsync"/> from the runtime configuration file.</summary>
    public ShimVm(ShimDaemonContext context, TaskTable tasks)
        : this(context, tasks, MicroVm.StartAsync, () => RuntimeConfig.Load(), DefaultDeleteGrace)
    {
    }

    /// <summary>The shim's VM, booted by <paramref name="boot"/>; <paramref name="deleteGrace"/> bounds the wait for containerd's deletes once it ended.</summary>
    internal ShimVm(ShimDaemonContext context, TaskTable tasks, VmBoot boot, Func<RuntimeConfig> loadConfig, TimeSpan deleteGrace)
    {
        _context = context;
        _tasks = tasks;
        _boot = boot;
        _loadConfig = loadConfig;
        _deleteGrace = deleteGrace;
    }

    /// <inheritdoc/>
    public MicroVm? Current => _vm;

    /// <inheritdoc/>
    public MicroVm Running => _vm ?? throw new TtrpcException(StatusCode.FailedPrecondition, "no microVM is running in this shim");

    /// <inheritdoc/>
    public Task<MicroVm> EnsureAsync(string vmId, CancellationToken cancellationToken) =>
        EnsureAsync(vmId, (config, _) => Task.FromResult((config, VmDevices.None)), cancellationToken);

    /// <inheritdoc/>
    public async Task<MicroVm> EnsureAsync(string vmId, VmPlan plan, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
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

            (RuntimeConfig config, VmDevices devices) = await plan(LoadConfig(), cancellationToken).ConfigureAwait(false);
            return await BootAsync(vmId, config, devices, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc/>
    public Task<MicroVm> CreateAsync(string vmId, RuntimeConfig config, VmDevices devices, bool keepAlive, CancellationToken cancellationToken) =>
        CreateAsync(vmId, _ => Task.FromResult((config, devices)), keepAlive, cancellationToken);

    /// <inheritdoc/>
    public async Task<MicroVm> CreateAsync(string vmId, Func<CancellationToken, Task<(RuntimeConfig Config, VmDevices Devices)>> plan, bool keepAlive, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(plan);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_createdByControlApi || _vm is not null)
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"vm \"{vmId}\" was already created in this shim");
            }

            _createdByControlApi = true;
            _keepAlive = keepAlive;
            (RuntimeConfig config, VmDevices devices) = await plan(cancellationToken).ConfigureAwait(false);
            return await BootAsync(vmId, config, devices, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc/>
    public void ExitAfterFailedCreate(string reason) => _context.Lifetime.RequestExit(reason);

    /// <inheritdoc/>
    public async Task<bool> IsPausedAsync(CancellationToken cancellationToken) =>
        _paused && _vm is { } vm && await vm.Machine.GetStateAsync(cancellationToken).ConfigureAwait(false) == MachineState.Paused;

    /// <inheritdoc/>
    public async Task PauseAsync(CancellationToken cancellationToken)
    {
        await Live().Machine.PauseAsync(cancellationToken).ConfigureAwait(false);
        _paused = true;
    }

    /// <inheritdoc/>
    public async Task ResumeAsync(CancellationToken cancellationToken)
    {
        await Live().Machine.ResumeAsync(cancellationToken).ConfigureAwait(false);
        _paused = false;
    }

    /// <inheritdoc/>
    public async Task StopAsync(TimeSpan flushTimeout, CancellationToken cancellationToken)
    {
        MicroVm vm = _vm ?? throw new TtrpcException(StatusCode.NotFound, "no vm was created in this shim");
        await _stopping.CancelAsync().ConfigureAwait(false);
        await vm.StopAsync(_paused ? TimeSpan.Zero : flushTimeout, cancellationToken).ConfigureAwait(false);
        await _watch.ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task ShutdownAsync(bool now, string reason, CancellationToken cancellationToken)
    {
        if ((_tasks.Count > 0 || _keepAlive) && !now)
        {
            return;
        }

        if (_vm is { } vm)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
            await CleanupStep.RunAsync(() => vm.StopAsync(TimeSpan.Zero, cancellationToken), _context.Logger).ConfigureAwait(false);
            await CleanupStep.RunAsync(async () => await vm.DisposeAsync().ConfigureAwait(false), _context.Logger).ConfigureAwait(false);
        }

        _context.Lifetime.RequestExit(reason);
    }

    /// <summary>Stops pumping events and ends the VM (its VMM with it), if it was booted.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_vm is { } vm)
        {
            await vm.DisposeAsync().ConfigureAwait(false);
        }

        await _eventPump.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _lock.Dispose();
        _stopping.Dispose();
    }

    private MicroVm Live()
    {
        MicroVm vm = _vm ?? throw new TtrpcException(StatusCode.NotFound, "no vm was created in this shim");
        return vm.Machine.Exited.IsCompleted
            ? throw new TtrpcException(StatusCode.FailedPrecondition, $"vm \"{vm.Machine.VmId}\" has exited")
            : vm;
    }

    private RuntimeConfig LoadConfig()
    {
        try
        {
            return _loadConfig();
        }
        catch (InvalidOperationException e)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, e.Message, e);
        }
    }

    // Called with _lock held.
    private async Task<MicroVm> BootAsync(string vmId, RuntimeConfig config, VmDevices devices, CancellationToken cancellationToken)
    {
        MicroVm vm = await _boot(config, devices, _context.Arguments.Namespace, vmId, _context.Logger, cancellationToken).ConfigureAwait(false);
        _vm = vm;
        var pump = new GuestEventPump(vm.Agent, _tasks, _context.Events, _context.Logger);
        _eventPump = Task.Run(() => pump.RunAsync(_stopping.Token), CancellationToken.None);
        _watch = Task.Run(() => WatchAsync(vm), CancellationToken.None);
        LogVmStarted(_context.Logger, vmId, vm.Dir.RootPath);
        return vm;
    }

    // A VMM that dies takes every process with it: each gets an exit, as if killed.
    private async Task WatchAsync(MicroVm vm)
    {
        VmExit exit = await vm.Machine.Exited.ConfigureAwait(false);
        LogVmExited(_context.Logger, vm.Machine.VmId, exit.ExitCode);
        Timestamp exitedAt = Timestamp.FromDateTimeOffset(exit.ExitedAt);
        foreach (ProcessRecord process in _tasks.Unfinished())
        {
            if (process.TryExit(ProcessRecord.KilledStatus, exitedAt))
            {
                await CleanupStep.RunAsync(() => _context.Events.PublishAsync("/tasks/exit", new TaskExit
                {
                    ContainerId = process.ContainerId,
                    Id = process.Id,
                    Pid = process.Pid,
                    ExitStatus = ProcessRecord.KilledStatus,
                    ExitedAt = exitedAt,
                }, CancellationToken.None), _context.Logger).ConfigureAwait(false);
            }
        }

        // A VM created through the control API ends its shim when it ends (StopVM or a dead VMM), as upstream's.
        if (_createdByControlApi)
        {
            _ = Task.Run(() => ExitOnceExpectedDeletesAreDoneAsync(vm), CancellationToken.None);
        }
    }

    /// <summary>
    /// Ends the shim of an ended VM once no client that waited for a task's exit still has to delete it (bounded by the
    /// delete grace): such a client (ctr run --rm, the CRI plugin) deletes the task as soon as it has the exit, and its
    /// Delete must find the shim to get the exit status. A task nobody waits for is not waited for: containerd deletes
    /// it itself once the shim is gone, with the status the delete verb reports (137).
    /// </summary>
    private async Task ExitOnceExpectedDeletesAreDoneAsync(MicroVm vm)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < _deleteGrace && _tasks.ExpectsDeletes())
        {
            await Task.Delay(TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);
        }

        await CleanupStep.RunAsync(async () => await vm.DisposeAsync().ConfigureAwait(false), _context.Logger).ConfigureAwait(false);
        _context.Lifetime.RequestExit($"vm {vm.Machine.VmId} created by CreateVM has exited");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId} is up in {Dir}")]
    private static partial void LogVmStarted(ILogger logger, string vmId, string dir);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: the VMM exited with status {ExitCode}")]
    private static partial void LogVmExited(ILogger logger, string vmId, int exitCode);
}
