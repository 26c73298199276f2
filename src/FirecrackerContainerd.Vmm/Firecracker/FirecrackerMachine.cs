using System.Text.Json;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Firecracker.Api;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;
using FirecrackerContainerd.Vmm.Firecracker.Telemetry;
using FirecrackerContainerd.Vmm.Jail;
using FirecrackerContainerd.Vmm.Launch;
using FirecrackerContainerd.Vmm.Machine;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vmm.Firecracker;

/// <summary>A machine run by a Firecracker process we spawn and drive over its HTTP API socket.</summary>
/// <remarks>
/// Firecracker runs with the VM directory (or, jailed, the chroot root) as its working directory, and
/// every path it is given there is relative (<c>firecracker.sock</c>, <c>fc-logs.fifo</c>, ...), which
/// keeps socket paths far below the 108-byte limit however deep the VM directory is. The
/// configuration order is the Go SDK's: logger, metrics, machine config, boot source, drives,
/// network, vsock, then balloon and MMDS, then InstanceStart.
/// </remarks>
public sealed partial class FirecrackerMachine : IVirtualMachine
{
    private readonly FirecrackerOptions _options;
    private readonly ILogger _logger;
    private readonly string _workDir;
    private readonly string _vmDirPath;
    private readonly string? _jailerId;
    private readonly string? _execFile;
    private readonly TaskCompletionSource<VmExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private FirecrackerJail? _jail;
    private MachineSpec _spec;
    private VmmProcess? _process;
    private FirecrackerApiClient? _api;
    private FirecrackerLogForwarder? _logs;
    private FirecrackerMetricsReader? _metrics;
    private bool _booted;

    /// <summary>Creates the machine described by <paramref name="spec"/>, living in <paramref name="vmDir"/>; nothing runs until <see cref="StartAsync"/>.</summary>
    public FirecrackerMachine(MachineSpec spec, VmDir vmDir, FirecrackerOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        MachineSpecValidator.ThrowIfInvalid(spec);
        _spec = spec;
        _options = options;
        _logger = logger;
        _vmDirPath = Path.GetFullPath(vmDir.RootPath);
        if (options.Jail is { } jail)
        {
            // Named after the VM directory (namespace#id), which is unique on the host where a VM id alone is not.
            _jailerId = JailerId.For(Path.GetFileName(_vmDirPath.TrimEnd('/')));
            _execFile = ExecFile(options.FirecrackerBinary);
            _workDir = Path.Combine(JailLayout.JailDirectoryOf(jail.ChrootBase, Path.GetFileName(_execFile), _jailerId), "root");
        }
        else
        {
            _workDir = _vmDirPath;
        }
    }

    /// <inheritdoc/>
    public string VmId => _spec.VmId;

    /// <inheritdoc/>
    public MachineSpec Spec => Volatile.Read(ref _spec);

    /// <summary>The metrics reader, once started (its latest sample and counters).</summary>
    public FirecrackerMetricsReader? Metrics => _metrics;

    /// <summary>The jailer id, when Firecracker runs jailed (<see cref="JailerId.For"/> of the VM directory's name).</summary>
    public string? JailerIdentity => _jailerId;

    /// <summary>The uid the jailed Firecracker runs as, while its jail exists.</summary>
    public uint? JailUid => _jail?.Uid;

    /// <summary>The Firecracker process id, once started.</summary>
    public int? Pid => _process?.Pid;

    /// <summary>Host path of the API socket.</summary>
    public string ApiSocketPath => Path.Combine(_workDir, WellKnownNames.FirecrackerSockName);

    /// <inheritdoc/>
    public string ControlSocketPath => ApiSocketPath;

    /// <inheritdoc/>
    public string? VsockHostPath => _spec.Vsock is { } v
        ? _jailerId is null ? Path.GetFullPath(v.UdsPath, _workDir) : JailLayout.HostPathIn(_workDir, v.UdsPath)
        : null;

    /// <inheritdoc/>
    public Task<VmExit> Exited => _exited.Task;

    /// <inheritdoc/>
    public IReadOnlyList<string> RecentOutput() => _process?.RecentOutput() ?? [];

    /// <summary>The arguments Firecracker gets; all paths relative to its working directory.</summary>
    internal static IReadOnlyList<string> FirecrackerArguments() => ["--api-sock", WellKnownNames.FirecrackerSockName];

    /// <inheritdoc/>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await LaunchAsync(stageFiles: true, async (api, spec) =>
        {
            await ConfigureAsync(api, spec, cancellationToken).ConfigureAwait(false);
            await api.PutActionAsync(ActionType.InstanceStart, cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        LogBooted(_logger, VmId, _process!.Pid);
    }

    /// <inheritdoc/>
    public async Task RestoreAsync(SnapshotLoad snapshot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        await LaunchAsync(stageFiles: false, async (api, _) =>
        {
            var load = new ApiSnapshotLoadParams(
                snapshot.SnapshotPath,
                new ApiMemoryBackend("File", snapshot.MemFilePath),
                snapshot.TrackDirtyPages,
                snapshot.ResumeVm,
                snapshot.VsockUdsPathOverride is null ? null : new ApiVsockOverride(snapshot.VsockUdsPathOverride));
            await api.PutSnapshotLoadAsync(load, cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task<MachineState> GetStateAsync(CancellationToken cancellationToken)
    {
        var info = await Api().DescribeInstanceAsync(cancellationToken).ConfigureAwait(false);
        return info.State switch
        {
            "Not started" => MachineState.NotStarted,
            "Running" => MachineState.Running,
            "Paused" => MachineState.Paused,
            _ => throw new InvalidDataException($"firecracker API GET / for vm \"{VmId}\" answered unknown state \"{info.State}\""),
        };
    }

    /// <inheritdoc/>
    public Task PauseAsync(CancellationToken cancellationToken) =>
        Api().PatchVmAsync(new ApiVm(ApiVmState.Paused), cancellationToken);

    /// <inheritdoc/>
    public Task ResumeAsync(CancellationToken cancellationToken) =>
        Api().PatchVmAsync(new ApiVm(ApiVmState.Resumed), cancellationToken);

    /// <inheritdoc/>
    public async Task PatchDriveAsync(string driveId, string hostPath, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(hostPath);
        var updated = Spec.WithDriveHostPath(driveId, hostPath);
        if (_options.Jail is null)
        {
            await Api().PatchDriveAsync(new ApiPartialDrive(driveId, hostPath), cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _spec, updated);
            return;
        }

        // The new file goes in under a name of its own by the jail's policy; the old one goes once Firecracker has switched.
        FirecrackerJail jail = _jail ?? throw new InvalidOperationException($"vm \"{VmId}\" has no running Firecracker (its jail is gone)");
        bool readOnly = updated.Drives.Single(d => d.DriveId == driveId).IsReadOnly;
        string staged = jail.Layout.StageDrive(driveId, hostPath, readOnly);
        try
        {
            await Api().PatchDriveAsync(new ApiPartialDrive(driveId, staged), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            jail.Layout.Discard(staged);
            throw;
        }

        jail.Layout.CommitDrive(driveId, staged);
        Volatile.Write(ref _spec, updated);
    }

    /// <inheritdoc/>
    public async Task UpdateBalloonAsync(int amountMib, CancellationToken cancellationToken)
    {
        await Api().PatchBalloonAsync(new ApiBalloonUpdate(amountMib), cancellationToken).ConfigureAwait(false);
        UpdateSpecBalloon(b => b with { AmountMib = amountMib });
    }

    /// <inheritdoc/>
    public async Task<BalloonDevice> GetBalloonConfigAsync(CancellationToken cancellationToken) =>
        ToBalloonDevice(VmId, await Api().GetBalloonAsync(cancellationToken).ConfigureAwait(false));

    /// <inheritdoc/>
    public async Task<BalloonStatistics> GetBalloonStatisticsAsync(CancellationToken cancellationToken) =>
        ToBalloonStatistics(VmId, Spec.Machine.MemSizeMib, await Api().GetBalloonStatsAsync(cancellationToken).ConfigureAwait(false));

    /// <inheritdoc/>
    public async Task UpdateBalloonStatisticsAsync(int pollingIntervalSeconds, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pollingIntervalSeconds);
        await Api().PatchBalloonStatsAsync(new ApiBalloonStatsUpdate(pollingIntervalSeconds), cancellationToken).ConfigureAwait(false);
        UpdateSpecBalloon(b => b with { StatsPollingIntervalSeconds = pollingIntervalSeconds });
    }

    /// <summary>Checks Firecracker's <c>GET /balloon</c> answer; it must not be taken on trust.</summary>
    internal static BalloonDevice ToBalloonDevice(string vmId, ApiBalloon balloon) =>
        balloon.AmountMib >= 0 && balloon.StatsPollingIntervalS is null or >= 0
            ? new BalloonDevice(balloon.AmountMib, balloon.DeflateOnOom, balloon.StatsPollingIntervalS ?? 0, balloon.FreePageReporting ?? false)
            : throw new InvalidDataException(
                $"firecracker API GET /balloon for vm \"{vmId}\" answered amount {balloon.AmountMib} MiB, interval {balloon.StatsPollingIntervalS} s");

    /// <summary>Checks Firecracker's <c>GET /balloon/statistics</c> answer against a guest of <paramref name="memSizeMib"/> MiB.</summary>
    internal static BalloonStatistics ToBalloonStatistics(string vmId, int memSizeMib, ApiBalloonStats stats)
    {
        var guest = new GuestMemoryStatistics(
            stats.SwapIn, stats.SwapOut, stats.MajorFaults, stats.MinorFaults, stats.FreeMemory, stats.TotalMemory,
            stats.AvailableMemory, stats.DiskCaches, stats.HugetlbAllocations, stats.HugetlbFailures);
        BalloonStatistics checkedStats = BalloonStatistics.Create(vmId, memSizeMib, stats.TargetPages, stats.ActualPages, guest.IsEmpty ? null : guest);
        if (checkedStats.TargetMib != stats.TargetMib || checkedStats.ActualMib != stats.ActualMib)
        {
            throw new InvalidDataException(
                $"firecracker API GET /balloon/statistics for vm \"{vmId}\" answered MiB ({stats.TargetMib}, {stats.ActualMib}) that do not match its pages ({stats.TargetPages}, {stats.ActualPages})");
        }

        return checkedStats;
    }

    private void UpdateSpecBalloon(Func<BalloonDevice, BalloonDevice> change)
    {
        MachineSpec spec = Spec;
        if (spec.Balloon is { } balloon)
        {
            Volatile.Write(ref _spec, spec with { Balloon = change(balloon) });
        }
    }

    /// <inheritdoc/>
    public Task SetMetadataAsync(JsonElement metadata, CancellationToken cancellationToken) =>
        Api().PutMmdsAsync(RequireObject(metadata), cancellationToken);

    /// <inheritdoc/>
    public Task PatchMetadataAsync(JsonElement patch, CancellationToken cancellationToken) =>
        Api().PatchMmdsAsync(RequireObject(patch), cancellationToken);

    /// <inheritdoc/>
    public Task FlushMetricsAsync(CancellationToken cancellationToken) =>
        Api().PutActionAsync(ActionType.FlushMetrics, cancellationToken);

    /// <inheritdoc/>
    public Task CreateSnapshotAsync(SnapshotCreate snapshot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        return Api().PutSnapshotCreateAsync(
            new ApiSnapshotCreateParams(snapshot.SnapshotPath, snapshot.MemFilePath, snapshot.Type.ToString()), cancellationToken);
    }

    /// <inheritdoc/>
    public async Task<VmExit> StopAsync(TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        var process = _process ?? throw new InvalidOperationException($"vm \"{VmId}\" was never started");
        if (process.Exited.IsCompleted)
        {
            return await _exited.Task.ConfigureAwait(false);
        }

        if (_booted)
        {
            try
            {
                await Api().PutActionAsync(ActionType.SendCtrlAltDel, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is FirecrackerApiException or IOException or TimeoutException)
            {
                LogCtrlAltDelFailed(_logger, VmId, e.Message);
            }

            if (await process.WaitForExitAsync(gracePeriod, cancellationToken).ConfigureAwait(false) is not null)
            {
                return await _exited.Task.ConfigureAwait(false);
            }

            LogKilling(_logger, VmId, process.Pid, gracePeriod.TotalMilliseconds);
        }

        await process.KillAsync().ConfigureAwait(false);
        return await _exited.Task.ConfigureAwait(false);
    }

    /// <summary>Kills Firecracker if it still runs, stops the FIFO readers and removes the API socket.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.DisposeAsync().ConfigureAwait(false);
            await _exited.Task.ConfigureAwait(false);
        }

        _api?.Dispose();
        if (_logs is not null)
        {
            await _logs.DisposeAsync().ConfigureAwait(false);
        }

        if (_metrics is not null)
        {
            await _metrics.DisposeAsync().ConfigureAwait(false);
        }

        ReleaseJail();
        _lifecycle.Dispose();
    }

    private static JsonElement RequireObject(JsonElement value) =>
        value.ValueKind == JsonValueKind.Object
            ? value
            : throw new ArgumentException($"MMDS data must be a JSON object, not {value.ValueKind}", nameof(value));

    /// <summary>
    /// The jailer's <c>--exec-file</c>: the binary found as exec finds it, absolute, links resolved. The jailer
    /// canonicalizes it and names the jail's directory after the resolved file, so we must see the same name.
    /// </summary>
    internal static string ExecFile(string binary)
    {
        // A name found nowhere stays a path here; the jail's preparation then fails naming it.
        string found = Path.GetFullPath(ExecutableLookup.Find(binary) ?? binary);
        return File.Exists(found) && File.ResolveLinkTarget(found, returnFinalTarget: true) is { } target ? target.FullName : found;
    }

    private FirecrackerApiClient Api() =>
        _api ?? throw new InvalidOperationException($"vm \"{VmId}\" has no running Firecracker (start it first)");

    /// <summary>Prepares the jail, spawns Firecracker, waits for its API and sets up logs and metrics, then runs <paramref name="configure"/>.</summary>
    /// <param name="stageFiles">Put the kernel, initrd and drives into the jail before the jailer starts (a boot needs them, a restore does not).</param>
    /// <param name="configure">Configures the VM through the API, given the spec with the paths Firecracker sees.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    private async Task LaunchAsync(bool stageFiles, Func<FirecrackerApiClient, MachineSpec, Task> configure, CancellationToken cancellationToken)
    {
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_process is not null)
            {
                throw new InvalidOperationException($"vm \"{VmId}\" was already started (pid {_process.Pid})");
            }

            MachineSpecValidator.ThrowIfInvalid(Spec, checkHostFiles: true);
            MachineSpec spec = Spec;
            try
            {
                PrepareJail();
                if (stageFiles && _jail is not null)
                {
                    // Before the jailer copies the mount namespace: a bound file is then in it from the start.
                    spec = _jail.Layout.StageSpec(spec);
                }

                PrepareWorkDir();
                _process = await VmmProcess.StartAsync(VmId, BuildLaunch(), _logger, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                ReleaseJail();
                throw;
            }

            _ = ObserveExitAsync(_process);
            try
            {
                _api = new FirecrackerApiClient(VmId, ApiSocketPath, _options.RequestTimeout);
                await WaitForApiAsync(_api, _process, cancellationToken).ConfigureAwait(false);
                await _api.PutLoggerAsync(
                    new ApiLogger(WellKnownNames.FirecrackerLogFifoName, _options.LogLevel, ShowLevel: true, ShowLogOrigin: false),
                    cancellationToken).ConfigureAwait(false);
                await _api.PutMetricsAsync(new ApiMetrics(WellKnownNames.FirecrackerMetricsFifoName), cancellationToken).ConfigureAwait(false);
                await configure(_api, spec).ConfigureAwait(false);
                _booted = true;
            }
            catch
            {
                // A half-configured VMM is of no use to anyone; do not leave it behind.
                await _process.KillAsync().ConfigureAwait(false);
                throw;
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    private VmmLaunch BuildLaunch()
    {
        if (_jail is not null)
        {
            return _jail.Launch(FirecrackerArguments());
        }

        return new VmmLaunch(_options.FirecrackerBinary, [.. FirecrackerArguments()], _workDir, _options.SetprivPath, Spec.NetworkNamespace);
    }

    /// <summary>Removes a stale API socket and vsock socket (Firecracker refuses to bind over them) and starts the FIFO readers.</summary>
    private void PrepareWorkDir()
    {
        Directory.CreateDirectory(_workDir);
        DeleteStaleSocket(ApiSocketPath);
        if (VsockHostPath is { } vsock)
        {
            DeleteStaleSocket(vsock);
        }

        var logFifo = Path.Combine(_workDir, WellKnownNames.FirecrackerLogFifoName);
        var metricsFifo = Path.Combine(_workDir, WellKnownNames.FirecrackerMetricsFifoName);
        if (_jail is not null)
        {
            _jail.Layout.CreateFifo(WellKnownNames.FirecrackerLogFifoName);
            _jail.Layout.CreateFifo(WellKnownNames.FirecrackerMetricsFifoName);
        }

        _logs = FirecrackerLogForwarder.Start(logFifo, VmId, _logger);
        _metrics = FirecrackerMetricsReader.Start(metricsFifo, VmId, _logger);
    }

    /// <summary>Takes the jail from the settings: a uid, a clean jail tree; throws before anything starts on a bad configuration.</summary>
    private void PrepareJail()
    {
        if (_options.Jail is not { } settings)
        {
            return;
        }

        _jail = FirecrackerJail.Prepare(settings, _options.Cgroups ?? VmCgroups.Detect(), _jailerId!, _execFile!, Spec);
        LogJailed(_logger, VmId, _jail.Uid, _jail.Layout.RootDir, _jail.CgroupPath, settings.DriveExposePolicy);
    }

    private void ReleaseJail()
    {
        var jail = Interlocked.Exchange(ref _jail, null);
        if (jail is null)
        {
            return;
        }

        try
        {
            jail.Dispose();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogJailCleanupFailed(_logger, VmId, e.Message);
        }
    }

    private static void DeleteStaleSocket(string path)
    {
        var info = new FileInfo(path);
        if (info.Exists || info.LinkTarget is not null)
        {
            File.Delete(path);
        }
    }

    private async Task WaitForApiAsync(FirecrackerApiClient api, VmmProcess process, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.SocketReadyTimeout);
        string lastError = "socket not created yet";
        while (true)
        {
            if (process.Exited.IsCompleted)
            {
                var exit = await process.Exited.ConfigureAwait(false);
                throw new IOException(
                    $"firecracker for vm \"{VmId}\" exited with status {exit.ExitCode} before its API socket {ApiSocketPath} answered ({lastError})");
            }

            if (File.Exists(ApiSocketPath))
            {
                try
                {
                    await api.GetMachineConfigAsync(deadline.Token).ConfigureAwait(false);
                    return;
                }
                catch (Exception e) when (e is IOException or TimeoutException or FirecrackerApiException or OperationCanceledException
                                           && !cancellationToken.IsCancellationRequested)
                {
                    lastError = e.Message;
                }
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(10), deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException(
                    $"firecracker API socket {ApiSocketPath} of vm \"{VmId}\" did not answer within {_options.SocketReadyTimeout.TotalMilliseconds} ms ({lastError})");
            }
        }
    }

    /// <summary>Sends the pre-boot configuration of <paramref name="spec"/> in the Go SDK's order (logger and metrics come first, from the caller).</summary>
    internal static async Task ConfigureAsync(FirecrackerApiClient api, MachineSpec spec, CancellationToken ct)
    {
        await api.PutMachineConfigAsync(
            new ApiMachineConfiguration(spec.Machine.VcpuCount, spec.Machine.MemSizeMib, spec.Machine.Smt), ct).ConfigureAwait(false);
        await api.PutBootSourceAsync(
            new ApiBootSource(spec.Boot.KernelImagePath, FirecrackerKernelArgs.Of(spec), spec.Boot.InitrdPath), ct).ConfigureAwait(false);
        foreach (var drive in spec.Drives)
        {
            await api.PutDriveAsync(
                new ApiDrive(drive.DriveId, drive.IsRoot, drive.HostPath, drive.IsReadOnly, drive.PartUuid,
                    drive.CacheType == DriveCacheType.Writeback ? ApiCacheType.Writeback : ApiCacheType.Unsafe,
                    ToApi(drive.RateLimiter)),
                ct).ConfigureAwait(false);
        }

        foreach (var nic in spec.NetworkInterfaces)
        {
            await api.PutNetworkInterfaceAsync(
                new ApiNetworkInterface(nic.IfaceId, nic.HostDevName, nic.GuestMac, ToApi(nic.RxRateLimiter), ToApi(nic.TxRateLimiter)),
                ct).ConfigureAwait(false);
        }

        if (spec.Vsock is { } vsock)
        {
            await api.PutVsockAsync(new ApiVsock(vsock.GuestCid, vsock.UdsPath), ct).ConfigureAwait(false);
        }

        if (spec.Balloon is { } balloon)
        {
            await api.PutBalloonAsync(
                new ApiBalloon(balloon.AmountMib, balloon.DeflateOnOom, balloon.StatsPollingIntervalSeconds, balloon.FreePageReporting ? true : null),
                ct).ConfigureAwait(false);
        }

        if (spec.Mmds is { } mmds)
        {
            var ifaces = spec.NetworkInterfaces.Where(n => n.AllowMmds).Select(n => n.IfaceId).ToArray();
            await api.PutMmdsConfigAsync(new ApiMmdsConfig(ifaces, mmds.Version.ToString(), mmds.Ipv4Address), ct).ConfigureAwait(false);
            if (mmds.InitialMetadata is { } metadata)
            {
                await api.PutMmdsAsync(metadata, ct).ConfigureAwait(false);
            }
        }
    }

    private static ApiRateLimiter? ToApi(RateLimiter? limiter) =>
        limiter is null ? null : new ApiRateLimiter(ToApi(limiter.Bandwidth), ToApi(limiter.Ops));

    private static ApiTokenBucket? ToApi(TokenBucket? bucket) =>
        bucket is null ? null : new ApiTokenBucket(bucket.Size, bucket.RefillTimeMs, bucket.OneTimeBurst);

    private async Task ObserveExitAsync(VmmProcess process)
    {
        var exit = await process.Exited.ConfigureAwait(false);
        if (!exit.Killed && exit.ExitCode == 0)
        {
            LogExited(_logger, VmId, exit.Pid, exit.ExitCode);
        }
        else
        {
            LogExitedBadly(_logger, VmId, exit.Pid, exit.ExitCode, exit.Killed);
        }

        DeleteStaleSocket(ApiSocketPath);
        // A Firecracker that is gone needs no jail: its tree, mounts, cgroup and uid go now, not at dispose.
        ReleaseJail();
        _exited.TrySetResult(exit);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId}: firecracker jailed as uid {Uid} in {Root}, cgroup {Cgroup}, drives by {Policy}")]
    private static partial void LogJailed(ILogger logger, string vmId, uint uid, string root, string cgroup, DriveExposePolicy policy);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: the firecracker jail was not cleared: {Error}")]
    private static partial void LogJailCleanupFailed(ILogger logger, string vmId, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId}: firecracker pid {Pid} booted the guest")]
    private static partial void LogBooted(ILogger logger, string vmId, int pid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: SendCtrlAltDel failed, going straight to the kill: {Error}")]
    private static partial void LogCtrlAltDelFailed(ILogger logger, string vmId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: firecracker pid {Pid} did not exit within {GraceMs} ms of Ctrl-Alt-Del; sending SIGKILL")]
    private static partial void LogKilling(ILogger logger, string vmId, int pid, double graceMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId}: firecracker pid {Pid} exited with status {ExitCode}")]
    private static partial void LogExited(ILogger logger, string vmId, int pid, int exitCode);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: firecracker pid {Pid} exited with status {ExitCode} (killed by us: {Killed})")]
    private static partial void LogExitedBadly(ILogger logger, string vmId, int pid, int exitCode, bool killed);
}
