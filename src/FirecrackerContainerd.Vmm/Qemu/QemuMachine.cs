using System.Collections.Immutable;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Jail;
using FirecrackerContainerd.Vmm.Launch;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vsock;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vmm.Qemu;

/// <summary>
/// A machine run by QEMU, controlled over QMP, with its vsock served by our vhost-user device so the
/// host reaches the guest through the same hybrid socket (CONNECT/OK) as with Firecracker.
/// Both processes run in the VM directory, are owned by us and die with us.
/// </summary>
public sealed partial class QemuMachine : IVirtualMachine
{
    /// <summary>Where QEMU finds its firmware on Debian: its own data directory and the packages its links there point into.</summary>
    private static readonly string[] QemuFirmwareDirectories = ["/usr/share/qemu", "/usr/share/seabios", "/usr/lib/ipxe/qemu"];

    private readonly VmDir _vmDir;
    private readonly QemuOptions _options;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource<VmExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private VmmProcess? _qemu;
    private VmmProcess? _vsockDevice;
    private VmJail? _jail;
    private Task _inProcessDevice = Task.CompletedTask;
    private CancellationTokenSource? _inProcessDeviceStop;
    private readonly List<UnixSocketPath> _socketPaths = [];
    private QmpClient? _qmp;
    private readonly Dictionary<string, string> _driveFileNodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _driveSizes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _nodeFdsets = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _patchLock = new(1, 1);
    private int _fileNodeCount;
    private string? _qemuPath;
    private int _disposed;

    /// <summary>Creates the machine; nothing runs until <see cref="StartAsync"/>.</summary>
    public QemuMachine(MachineSpec spec, VmDir vmDir, QemuOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        Spec = spec;
        _vmDir = vmDir;
        _options = options;
        _logger = logger;
    }

    /// <inheritdoc/>
    public string VmId => Spec.VmId;

    /// <inheritdoc/>
    public MachineSpec Spec { get; private set; }

    /// <inheritdoc/>
    public Task<VmExit> Exited => _exited.Task;

    /// <inheritdoc/>
    public IReadOnlyList<string> RecentOutput() => _qemu?.RecentOutput() ?? [];

    /// <inheritdoc/>
    public string? VsockHostPath => Spec.Vsock is { } vsock ? InVmDir(InSocketDirectory(vsock.UdsPath)) : null;

    /// <summary>The QEMU process id, once started.</summary>
    public int? Pid => _qemu?.Pid;

    /// <summary>How the guest's instructions run: KVM or TCG.</summary>
    public QemuAccelerator Accelerator => _options.Accelerator;

    /// <summary>The VM's jail while it runs confined; null when jailing is off.</summary>
    public VmJail? Jail => _jail;

    /// <summary>The vsock device's process id when it runs as its own process.</summary>
    public int? VsockDevicePid => _vsockDevice?.Pid;

    /// <summary>The QMP socket path.</summary>
    public string QmpSocketPath => InVmDir(InSocketDirectory(QemuCommandLine.QmpSocketName));

    /// <summary>
    /// Where a jailed QEMU and vsock device make their sockets: the one directory their user owns. The VM directory
    /// itself stays root's, so that nothing they do can swap a file the shim writes, formats or chowns there for a
    /// link elsewhere; the shim connects into this one only to a socket (<see cref="UnixSocketPath.ForExistingSocket"/>).
    /// </summary>
    public const string JailedSocketDirectory = "vmm";

    // Relative to the VM directory, QEMU's and the device's working directory.
    private string SocketDirectory => _options.Jail is null ? string.Empty : JailedSocketDirectory;

    /// <inheritdoc/>
    public string ControlSocketPath => QmpSocketPath;

    /// <inheritdoc/>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_qemu is not null)
        {
            throw new InvalidOperationException($"vm \"{VmId}\" was already started");
        }

        MachineSpecValidator.ThrowIfInvalid(Spec, checkHostFiles: true);
        _vmDir.Mkdir();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.EffectiveStartTimeout);
        try
        {
            if (_options.Jail is { } jailSettings)
            {
                _jail = PrepareJail(jailSettings);
            }

            if (Spec.Vsock is { } vsock)
            {
                await StartVsockDeviceAsync(vsock, timeout.Token).ConfigureAwait(false);
            }

            DeleteIfPresent(QmpSocketPath);
            ImmutableArray<string> arguments = QemuCommandLine.Arguments(Spec, _options.Accelerator, _options.TcgTranslationCacheMib, SocketDirectory);
            VmmLaunch launch = _jail is null
                ? new VmmLaunch(_options.QemuBinary, arguments, _vmDir.RootPath, NetworkNamespace: Spec.NetworkNamespace)
                : _jail.Launch(JailedQemu(arguments), Spec.NetworkNamespace);
            _qemu = await VmmProcess.StartAsync(VmId, launch, _logger, timeout.Token).ConfigureAwait(false);
            _ = ObserveExitAsync(_qemu);
            _qmp = await ConnectQmpAsync(timeout.Token).ConfigureAwait(false);
            await ConfigureBalloonAsync(timeout.Token).ConfigureAwait(false);
            LogStarted(_logger, VmId, _qemu.Pid, _options.Accelerator);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await DisposeAsync().ConfigureAwait(false);
            throw new TimeoutException(
                $"vm \"{VmId}\": QEMU did not come up within {_options.EffectiveStartTimeout.TotalSeconds:0} s in {_vmDir.RootPath}");
        }
        catch
        {
            await DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc/>
    public Task RestoreAsync(SnapshotLoad snapshot, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"vm \"{VmId}\": the QEMU driver does not restore snapshots (use the Firecracker driver)");

    /// <inheritdoc/>
    public async Task<MachineState> GetStateAsync(CancellationToken cancellationToken)
    {
        JsonElement status = await Qmp.ExecuteAsync("query-status", cancellationToken).ConfigureAwait(false);
        string? state = status.ValueKind == JsonValueKind.Object && status.TryGetProperty("status", out JsonElement s) ? s.GetString() : null;
        return state switch
        {
            "running" => MachineState.Running,
            "prelaunch" or "inmigrate" => MachineState.NotStarted,
            "paused" or "suspended" or "debug" or "io-error" or "watchdog" or "guest-panicked" or "shutdown" => MachineState.Paused,
            _ => throw new InvalidDataException($"vm \"{VmId}\": QEMU reported an unknown run state \"{state}\""),
        };
    }

    /// <inheritdoc/>
    public Task PauseAsync(CancellationToken cancellationToken) => Qmp.ExecuteAsync("stop", cancellationToken);

    /// <inheritdoc/>
    public Task ResumeAsync(CancellationToken cancellationToken) => Qmp.ExecuteAsync("cont", cancellationToken);

    /// <summary>
    /// Swaps the file behind drive <paramref name="driveId"/>: a new file node is added, the drive's raw node
    /// is reopened on it, the old file node is dropped, and, when the size changes, a resize to the new file's size
    /// makes virtio-blk tell the guest its new capacity (measured: the guest logs "detected capacity change" at once).
    /// </summary>
    public async Task PatchDriveAsync(string driveId, string hostPath, CancellationToken cancellationToken)
    {
        Drive drive = Spec.Drives.FirstOrDefault(d => d.DriveId == driveId)
            ?? throw new ArgumentException($"vm \"{VmId}\" has no drive \"{driveId}\"", nameof(driveId));
        if (!File.Exists(hostPath))
        {
            throw new FileNotFoundException($"vm \"{VmId}\": drive \"{driveId}\" backing file {hostPath} does not exist", hostPath);
        }

        // QEMU refuses to resize a read-only node, even to its own size: such a drive keeps the capacity its boot file
        // gave the guest, which must hold the new file (reads past the file's end fail, and a file system never asks).
        long capacity = _driveSizes.TryGetValue(driveId, out long patched) ? patched : new FileInfo(drive.HostPath).Length;
        if (drive.IsReadOnly && new FileInfo(hostPath).Length > capacity)
        {
            throw new ArgumentException(
                $"vm \"{VmId}\": read-only drive \"{driveId}\" holds {capacity} bytes, and {hostPath} is larger ({new FileInfo(hostPath).Length} bytes)", nameof(hostPath));
        }

        // Jailed, QEMU can open only what is in the VM directory; a file elsewhere (the blockfile snapshotter's) is
        // opened here and handed over as a descriptor in an fdset that QEMU opens as /dev/fdset/N.
        bool byDescriptor = _jail is not null && !IsInVmDir(hostPath);
        if (_jail is not null && !byDescriptor)
        {
            GiveToJail(_jail, hostPath, driveId);
        }

        await _patchLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // The command line names each drive's first file node "<id>-file"; every patch adds a fresh one.
            string oldFileNode = _driveFileNodes.GetValueOrDefault(driveId, $"{driveId}-file");
            string newFileNode = $"{driveId}-file{Interlocked.Increment(ref _fileNodeCount)}";
            string fileName = hostPath;
            if (byDescriptor)
            {
                long fdset = await AddFdAsync(hostPath, drive, cancellationToken).ConfigureAwait(false);
                _nodeFdsets[newFileNode] = fdset;
                fileName = "/dev/fdset/" + fdset.ToString(CultureInfo.InvariantCulture);
            }

            try
            {
                await Qmp.ExecuteAsync("blockdev-add", w =>
                {
                    w.WriteString("driver", "file");
                    w.WriteString("node-name", newFileNode);
                    w.WriteString("filename", fileName);
                    w.WriteBoolean("read-only", drive.IsReadOnly);
                }, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await RemoveFdsetAsync(newFileNode).ConfigureAwait(false);
                throw;
            }

            try
            {
                await Qmp.ExecuteAsync("blockdev-reopen", w =>
                {
                    w.WriteStartArray("options");
                    w.WriteStartObject();
                    w.WriteString("driver", "raw");
                    w.WriteString("node-name", driveId);
                    w.WriteString("file", newFileNode);
                    w.WriteBoolean("read-only", drive.IsReadOnly);
                    w.WriteEndObject();
                    w.WriteEndArray();
                }, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await TryQmpAsync("blockdev-del", w => w.WriteString("node-name", newFileNode)).ConfigureAwait(false);
                await RemoveFdsetAsync(newFileNode).ConfigureAwait(false);
                throw;
            }

            // The size the guest sees now: the boot file's, or what the last patch set (its file may be gone or
            // replaced by now: a container slot's image path is reused).
            long oldSize = _driveSizes.TryGetValue(driveId, out long patchedSize) ? patchedSize : new FileInfo(drive.HostPath).Length;
            _driveFileNodes[driveId] = newFileNode;
            Spec = Spec.WithDriveHostPath(driveId, hostPath);
            await Qmp.ExecuteAsync("blockdev-del", w => w.WriteString("node-name", oldFileNode), cancellationToken).ConfigureAwait(false);
            await RemoveFdsetAsync(oldFileNode).ConfigureAwait(false);

            // A read-only drive keeps its capacity (see above).
            long size = new FileInfo(hostPath).Length;
            if (drive.IsReadOnly)
            {
                size = oldSize;
            }
            else if (size != oldSize)
            {
                await Qmp.ExecuteAsync("block_resize", w =>
                {
                    w.WriteString("node-name", driveId);
                    w.WriteNumber("size", size);
                }, cancellationToken).ConfigureAwait(false);
            }

            _driveSizes[driveId] = size;
        }
        finally
        {
            _patchLock.Release();
        }
    }

    /// <inheritdoc/>
    public Task SetMetadataAsync(JsonElement metadata, CancellationToken cancellationToken) => NoMetadataService();

    /// <inheritdoc/>
    public Task PatchMetadataAsync(JsonElement patch, CancellationToken cancellationToken) => NoMetadataService();

    /// <inheritdoc/>
    public Task FlushMetricsAsync(CancellationToken cancellationToken) =>
        throw new NotSupportedException($"vm \"{VmId}\": QEMU has no metrics stream to flush");

    /// <inheritdoc/>
    public Task CreateSnapshotAsync(SnapshotCreate snapshot, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"vm \"{VmId}\": the QEMU driver does not create snapshots (use the Firecracker driver)");

    /// <summary>
    /// Asks the guest to power off (ACPI), waits at most <paramref name="gracePeriod"/>, then ends QEMU
    /// with QMP quit and, if that fails too, SIGKILL.
    /// </summary>
    public async Task<VmExit> StopAsync(TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        VmmProcess qemu = _qemu ?? throw new InvalidOperationException($"vm \"{VmId}\" was not started");
        if (!_exited.Task.IsCompleted && _qmp is not null)
        {
            await TryQmpAsync("system_powerdown", cancellationToken).ConfigureAwait(false);
            if (await qemu.WaitForExitAsync(gracePeriod, cancellationToken).ConfigureAwait(false) is null)
            {
                await TryQmpAsync("quit", cancellationToken).ConfigureAwait(false);
                if (await qemu.WaitForExitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false) is null)
                {
                    await qemu.KillAsync().ConfigureAwait(false);
                }
            }
        }

        return await _exited.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Kills QEMU and the vsock device if they still run and removes their sockets.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_qmp is not null)
        {
            await _qmp.DisposeAsync().ConfigureAwait(false);
        }

        if (_qemu is not null)
        {
            await _qemu.DisposeAsync().ConfigureAwait(false);
        }

        if (_vsockDevice is not null)
        {
            await _vsockDevice.DisposeAsync().ConfigureAwait(false);
        }

        await StopInProcessDeviceAsync().ConfigureAwait(false);
        foreach (UnixSocketPath path in _socketPaths)
        {
            path.Dispose();
        }

        DisposeJail();

        _inProcessDeviceStop?.Dispose();
        _patchLock.Dispose();

        DeleteIfPresent(QmpSocketPath);
        DeleteIfPresent(InVmDir(InSocketDirectory(QemuCommandLine.VhostUserVsockSocketName)));
        if (Spec.Vsock is { } vsock)
        {
            DeleteIfPresent(InVmDir(InSocketDirectory(vsock.UdsPath)));
        }

        // Jailed, the socket directory goes with the sockets; whatever else the VM's uid left there goes too (a
        // recursive delete removes links, it does not follow them).
        if (SocketDirectory.Length > 0 && Directory.Exists(InVmDir(SocketDirectory)))
        {
            try
            {
                Directory.Delete(InVmDir(SocketDirectory), recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogJailCleanupFailed(_logger, VmId, e.Message);
            }
        }
    }

    private QmpClient Qmp => _qmp ?? throw new InvalidOperationException($"vm \"{VmId}\" is not running");

    private Task NoMetadataService() =>
        throw new NotSupportedException($"vm \"{VmId}\": QEMU has no metadata service (MMDS); use the Firecracker driver");

    private async Task StartVsockDeviceAsync(VsockDevice vsock, CancellationToken cancellationToken)
    {
        string socket = InVmDir(InSocketDirectory(QemuCommandLine.VhostUserVsockSocketName));
        DeleteIfPresent(socket);
        DeleteIfPresent(InVmDir(InSocketDirectory(vsock.UdsPath)));
        string? binary = _jail is null ? _options.VsockDeviceBinary : _options.Jail?.VsockDeviceBinary;
        if (binary is null)
        {
            await StartInProcessVsockDeviceAsync(vsock, socket, cancellationToken).ConfigureAwait(false);
            return;
        }

        ImmutableArray<string> arguments = ImmutableArray.Create(
            "--socket", InSocketDirectory(QemuCommandLine.VhostUserVsockSocketName),
            "--uds-path", InSocketDirectory(vsock.UdsPath),
            "--guest-cid", vsock.GuestCid.ToString(CultureInfo.InvariantCulture));

        // Jailed, the device runs beside QEMU under the same uid and chroot, in a pid namespace of its own; it needs
        // nothing but its binary and the VM directory (guest memory arrives as descriptors over the vhost-user socket).
        VmmLaunch launch = _jail is null
            ? new VmmLaunch(binary, arguments, _vmDir.RootPath)
            : _jail.Launch(new JailedProgram(binary, arguments, [], [_vmDir.RootPath], [], [], _vmDir.RootPath), networkNamespace: null);
        _vsockDevice = await VmmProcess.StartAsync(VmId, launch, _logger, cancellationToken).ConfigureAwait(false);
        while (!File.Exists(socket))
        {
            if (_vsockDevice.Exited.IsCompleted)
            {
                VmExit exit = await _vsockDevice.Exited.ConfigureAwait(false);
                throw new IOException($"vm \"{VmId}\": the vsock device {binary} exited with status {exit.ExitCode} before creating {socket}");
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    // The device lives in this process; its sockets are reached through paths short enough for sockaddr_un.
    private async Task StartInProcessVsockDeviceAsync(VsockDevice vsock, string socket, CancellationToken cancellationToken)
    {
        UnixSocketPath vhost = UnixSocketPath.For(socket);
        _socketPaths.Add(vhost);
        UnixSocketPath uds = UnixSocketPath.For(Path.Combine(_vmDir.RootPath, vsock.UdsPath));
        _socketPaths.Add(uds);
        var device = new VhostUserVsockDevice(new VhostUserVsockOptions(vhost.ConnectPath, uds.ConnectPath, vsock.GuestCid), _logger);
        _inProcessDeviceStop = new CancellationTokenSource();
        _inProcessDevice = Task.Run(() => device.RunAsync(_inProcessDeviceStop.Token), CancellationToken.None);
        while (!File.Exists(socket))
        {
            if (_inProcessDevice.IsCompleted)
            {
                await _inProcessDevice.ConfigureAwait(false);
                throw new IOException($"vm \"{VmId}\": the vsock device stopped before creating {socket}");
            }

            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }
    }

    private string InSocketDirectory(string name) => Path.Join(SocketDirectory, name);

    private string InVmDir(string relative) => Path.Combine(_vmDir.RootPath, relative);

    private VmJail PrepareJail(JailSettings settings)
    {
        // Resolved before anything starts: a missing VMM is a configuration error, and the jail binds it by its path.
        string qemu = ProgramPath.Resolve(_options.QemuBinary, $"vm \"{VmId}\": the VMM");
        // Named after the VM directory (namespace#id), which is unique on the host where a VM id alone is not.
        VmJail jail = VmJail.Prepare(settings, VmCgroups.Detect(), Path.GetFileName(_vmDir.RootPath.TrimEnd('/')), Spec.Machine.MemSizeMib, Spec.Machine.VcpuCount);
        try
        {
            _qemuPath = qemu;
            // The VM directory stays root's (searchable, not listable); the jailed processes own only their socket directory.
            File.SetUnixFileMode(_vmDir.RootPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            string sockets = InVmDir(JailedSocketDirectory);
            if (Directory.Exists(sockets))
            {
                Directory.Delete(sockets, recursive: true);
            }

            Directory.CreateDirectory(sockets, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            jail.Chown(sockets);
            // A read-only drive outside the VM directory (the guest's root drive, shared by every VM) is bound into the
            // jail read-only, as the kernel is; the VM's own drives become the VM's user's.
            foreach (Drive drive in Spec.Drives.Where(d => !IsSharedReadOnly(d)))
            {
                GiveToJail(jail, drive.HostPath, drive.DriveId);
            }

            LogJailed(_logger, VmId, jail.Uid, jail.RootPath, jail.CgroupPath);
            return jail;
        }
        catch
        {
            jail.Dispose();
            throw;
        }
    }

    private JailedProgram JailedQemu(ImmutableArray<string> arguments)
    {
        var readOnly = ImmutableArray.CreateBuilder<string>();
        readOnly.Add(Spec.Boot.KernelImagePath);
        if (Spec.Boot.InitrdPath is { } initrd)
        {
            readOnly.Add(initrd);
        }

        readOnly.AddRange(Spec.Drives.Where(IsSharedReadOnly).Select(d => Path.GetFullPath(d.HostPath)));

        // QEMU's firmware (the microvm BIOS, option ROMs) and what its links there point at.
        readOnly.AddRange(QemuFirmwareDirectories.Where(Directory.Exists));
        var devices = ImmutableArray.CreateBuilder<string>();
        if (_options.Accelerator == QemuAccelerator.Kvm)
        {
            devices.Add("/dev/kvm");
        }

        if (Spec.NetworkInterfaces.Length > 0)
        {
            devices.Add("/dev/net/tun");
        }

        return new JailedProgram(
            _qemuPath ?? _options.QemuBinary, arguments, readOnly.ToImmutable(), [_vmDir.RootPath], devices.ToImmutable(),
            [.. Spec.NetworkInterfaces.Select(nic => nic.HostDevName)], _vmDir.RootPath);
    }

    private bool IsSharedReadOnly(Drive drive) => drive.IsReadOnly && !IsInVmDir(drive.HostPath);

    private bool IsInVmDir(string hostPath) =>
        Path.GetFullPath(hostPath).StartsWith(_vmDir.RootPath.TrimEnd('/') + "/", StringComparison.Ordinal);

    // QEMU dups the fdset's descriptor whose access mode matches the node's, so the file is opened as the drive is.
    private async Task<long> AddFdAsync(string hostPath, Drive drive, CancellationToken cancellationToken)
    {
        using var file = File.OpenHandle(hostPath, FileMode.Open, drive.IsReadOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite);
        JsonElement added = await Qmp.ExecuteWithDescriptorAsync("add-fd", null, file, cancellationToken).ConfigureAwait(false);
        return added.TryGetProperty("fdset-id", out JsonElement id) && id.TryGetInt64(out long fdset)
            ? fdset
            : throw new InvalidDataException($"vm \"{VmId}\": QEMU's add-fd for drive \"{drive.DriveId}\" file {hostPath} returned no fdset-id");
    }

    // An fdset whose node is gone: QEMU closes its descriptors once no node uses them.
    private async Task RemoveFdsetAsync(string fileNode)
    {
        if (_nodeFdsets.Remove(fileNode, out long fdset))
        {
            await TryQmpAsync("remove-fd", w => w.WriteNumber("fdset-id", fdset)).ConfigureAwait(false);
        }
    }

    // The jail sees the VM directory and nothing else that is writable: a drive must live there, owned by the VM's uid.
    private void GiveToJail(VmJail jail, string hostPath, string driveId)
    {
        string full = Path.GetFullPath(hostPath);
        if (!IsInVmDir(full))
        {
            throw new InvalidOperationException(
                $"vm \"{VmId}\": drive \"{driveId}\" file {full} is outside the VM directory {_vmDir.RootPath}, which is all a jailed VMM can open");
        }

        jail.Chown(full);
    }

    private void DisposeJail()
    {
        try
        {
            _jail?.Dispose();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogJailCleanupFailed(_logger, VmId, e.Message);
        }
    }

    private async Task<QmpClient> ConnectQmpAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_exited.Task.IsCompleted)
            {
                throw ExitedBeforeQmp(await _exited.Task.ConfigureAwait(false));
            }

            if (File.Exists(QmpSocketPath))
            {
                try
                {
                    return await QmpClient.ConnectAsync(QmpSocketPath, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is SocketException or FileNotFoundException)
                {
                    // Bound but not yet listening, or gone between the check and the open; try again.
                }
                catch (IOException e)
                {
                    // QEMU listens on its QMP socket before it opens its devices: one it cannot open (a tap, a drive)
                    // ends it while the greeting is read. Its exit, not the reset connection, says why.
                    VmExit? exit = await WaitForExitAsync(QmpExitGrace, cancellationToken).ConfigureAwait(false);
                    throw exit is null ? e : ExitedBeforeQmp(exit);
                }
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private static readonly TimeSpan QmpExitGrace = TimeSpan.FromSeconds(2);

    private async Task<VmExit?> WaitForExitAsync(TimeSpan grace, CancellationToken cancellationToken)
    {
        Task done = await Task.WhenAny(_exited.Task, Task.Delay(grace, cancellationToken)).ConfigureAwait(false);
        return done == _exited.Task ? await _exited.Task.ConfigureAwait(false) : null;
    }

    // QEMU's last words name what it could not do; they are quoted, not parsed (the guest's console shares the stream).
    private IOException ExitedBeforeQmp(VmExit exit)
    {
        string said = string.Join(" | ", RecentOutput().TakeLast(3));
        return new IOException(
            $"vm \"{VmId}\": QEMU exited with status {exit.ExitCode} before its QMP socket answered" + (said.Length > 0 ? $"; its last output: {said}" : string.Empty));
    }

    private async Task ObserveExitAsync(VmmProcess qemu)
    {
        VmExit exit = await qemu.Exited.ConfigureAwait(false);
        if (_vsockDevice is not null)
        {
            await _vsockDevice.KillAsync().ConfigureAwait(false);
        }

        await StopInProcessDeviceAsync().ConfigureAwait(false);

        LogExited(_logger, VmId, exit.Pid, exit.ExitCode, exit.Killed);
        _exited.TrySetResult(exit);
    }

    private async Task StopInProcessDeviceAsync()
    {
        if (_inProcessDeviceStop is { } stop)
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await _inProcessDevice.ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException or InvalidDataException)
            {
                LogDeviceFailed(_logger, VmId, e.Message);
            }
        }
    }

    private async Task TryQmpAsync(string command, Action<System.Text.Json.Utf8JsonWriter> writeArguments)
    {
        try
        {
            await Qmp.ExecuteAsync(command, writeArguments, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or QmpException)
        {
            // Best effort clean-up after a failed command; the original error is what the caller reports.
        }
    }

    private async Task TryQmpAsync(string command, CancellationToken cancellationToken)
    {
        try
        {
            await Qmp.ExecuteAsync(command, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or QmpException)
        {
            // QEMU may exit before it answers "quit" or a power-off; the exit is what we wait for.
        }
    }

    private static void DeleteIfPresent(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId}: jailed as uid {Uid} in {Root}, cgroup {Cgroup}")]
    private static partial void LogJailed(ILogger logger, string vmId, uint uid, string root, string cgroup);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: the jail was not cleared: {Error}")]
    private static partial void LogJailCleanupFailed(ILogger logger, string vmId, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId}: QEMU started, pid {Pid}, accelerator {Accelerator}")]
    private static partial void LogStarted(ILogger logger, string vmId, int pid, QemuAccelerator accelerator);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: the vsock device ended with an error: {Error}")]
    private static partial void LogDeviceFailed(ILogger logger, string vmId, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId}: QEMU pid {Pid} exited with status {ExitCode} (killed: {Killed})")]
    private static partial void LogExited(ILogger logger, string vmId, int pid, int exitCode, bool killed);
}
