using System.Collections.Immutable;
using System.Net.Sockets;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Tracing;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Selection;
using FirecrackerContainerd.Vsock.Unix;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// One microVM as the shim uses it: the machine (Firecracker or QEMU), its VM directory, the stub drives
/// that container rootfs images replace, the agent connection and the vsock ports handed to processes.
/// </summary>
internal sealed class MicroVm : IAsyncDisposable
{
    private const string VsockName = WellKnownNames.FirecrackerVSockName;

    /// <summary>The drive id of the guest's root file system when it boots from a drive (<see cref="RuntimeConfig.RootDrivePath"/>).</summary>
    private const string RootDriveId = "root";

    /// <summary>How long an agent call cut off by a closed connection waits for the VMM's exit before it says why.</summary>
    private static readonly TimeSpan AgentLossWait = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The capacity the guest sees on a layer slot (a sparse stub on the host): a read-only drive cannot be resized, so it
    /// must hold the largest layer file patched in.
    /// </summary>
    public const long LayerSlotBytes = 16L << 30;

    private readonly bool[] _slotsInUse;
    private readonly bool[] _layerSlotsInUse;
    private readonly Lock _gate = new();
    private uint _nextPort = WellKnownNames.StdioBaseVsockPort;
    private int _agentDisposed;
    private int _disposed;

    private readonly ImmutableArray<VmDriveMount> _driveMounts;
    private readonly ILogger _logger;
    private readonly IAsyncDisposable? _hostNetwork;

    /// <summary>A VM that is up: its machine runs and its agent answered.</summary>
    internal MicroVm(
        VmDir dir, IVirtualMachine machine, IGuestAgent agent, int slots, ImmutableArray<VmDriveMount> driveMounts, ILogger logger, IAsyncDisposable? hostNetwork = null,
        int layerSlots = 0, int layerUpperMib = 0)
    {
        LayerUpperMib = layerUpperMib;
        _layerSlotsInUse = new bool[layerSlots];
        _driveMounts = driveMounts;
        _hostNetwork = hostNetwork;
        _logger = logger;
        Dir = dir;
        Machine = machine;
        Agent = agent;
        _slotsInUse = new bool[slots];
    }

    public VmDir Dir { get; }

    public IVirtualMachine Machine { get; }

    /// <summary>The hybrid vsock socket on the host: where the machine says (a jailed VMM's lies in the jail's own directory).</summary>
    public string VsockPath => VsockPathOf(Machine, Dir);

    /// <summary>
    /// The connection to the guest agent. It outlives a pause: the vsock device keeps the VM's connections while
    /// QEMU has its rings stopped.
    /// </summary>
    public IGuestAgent Agent { get; }

    /// <summary>Where the phases of this VM's containers are timed (<see cref="RuntimeConfig.Trace"/>).</summary>
    public PhaseTrace Trace { get; init; } = PhaseTrace.Off;

    /// <summary>Boots VM <paramref name="vmId"/> of namespace <paramref name="ns"/> with <paramref name="devices"/> and waits until its agent answers.</summary>
    public static async Task<MicroVm> StartAsync(
        RuntimeConfig config, VmDevices devices, string ns, string vmId, ILogger logger, CancellationToken cancellationToken)
    {
        var trace = new PhaseTrace(logger, config.Trace);
        string subject = "vm " + vmId;
        long begun = PhaseTrace.Now();
        Directory.CreateDirectory(config.ShimBaseDir);
        VmDir dir = VmDir.ShimDir(config.ShimBaseDir, ns, vmId);
        dir.Mkdir();
        var drives = ImmutableArray.CreateBuilder<Drive>();
        for (int slot = 0; slot < config.ContainerSlots; slot++)
        {
            string path = StubPath(dir, slot);
            File.Delete(path);
            StubDrive.Create(path, DriveId(slot));
            drives.Add(new Drive(DriveId(slot), path));
        }

        for (int slot = 0; slot < config.LayerSlots; slot++)
        {
            string path = LayerStubPath(dir, slot);
            File.Delete(path);
            StubDrive.Create(path, LayerDriveId(slot));
            using (var stub = new FileStream(path, FileMode.Open, FileAccess.Write))
            {
                stub.SetLength(LayerSlotBytes);
            }

            drives.Add(new Drive(LayerDriveId(slot), path, IsReadOnly: true));
        }

        drives.AddRange(devices.DriveMounts.Select(mount => mount.CreateStub(dir)));
        if (config.RootDrivePath.Length > 0)
        {
            drives.Add(new Drive(RootDriveId, config.RootDrivePath, IsRoot: true, IsReadOnly: true));
        }

        var spec = new MachineSpec(
            vmId,
            new BootSource(config.KernelImagePath, config.RootDrivePath.Length > 0 ? null : config.InitrdPath, config.KernelArgs),
            new MachineConfig(config.VcpuCount, config.MemSizeMib),
            drives.ToImmutable(),
            new VsockDevice(VsockDevice.MinGuestCid, VsockName),
            devices.NetworkInterfaces,
            Balloon: devices.Balloon,
            NetworkNamespace: devices.NetworkNamespace);
        IVirtualMachine machine;
        try
        {
            machine = await CreateMachineAsync(config, spec, dir, logger, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            DeleteStubs(dir, config, devices);
            if (devices.HostNetwork is { } unused)
            {
                await unused.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }

        try
        {
            await machine.StartAsync(cancellationToken).ConfigureAwait(false);
            trace.Phase(subject, "VMM started", begun);
            long machineUp = PhaseTrace.Now();
            var dial = new HybridVsockDialOptions(TimeSpan.FromSeconds(config.AgentTimeoutSeconds), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));
            Task<Socket> connect = HybridVsockDialer.DialAsync(VsockPathOf(machine, dir), WellKnownNames.AgentVsockPort, dial, cancellationToken);
            if (await Task.WhenAny(connect, machine.Exited).ConfigureAwait(false) != connect)
            {
                VmExit exit = await machine.Exited.ConfigureAwait(false);
                throw new IOException(ExitedBeforeTheAgentAnswered(exit, machine.RecentOutput()));
            }

            var agent = new AgentClient(new TtrpcClient(await connect.ConfigureAwait(false)), () => ExplainAgentLossAsync(machine.Exited, machine.RecentOutput, AgentLossWait));
            var version = await agent.VersionAsync(cancellationToken).ConfigureAwait(false);
            TraceGuestBoot(trace, subject, machineUp, version.InitUptimeMs, version.AgentUptimeMs);
            long mounts = PhaseTrace.Now();
            await VmDriveMount.MountAllAsync(devices.DriveMounts, machine, agent, cancellationToken).ConfigureAwait(false);
            trace.Phase(subject, "drive mounts", mounts);
            trace.Phase(subject, "boot", begun);
            return new MicroVm(dir, machine, agent, config.ContainerSlots, devices.DriveMounts, logger, devices.HostNetwork, config.LayerSlots, config.LayerUpperMib)
            {
                Trace = trace,
            };
        }
        catch
        {
            await machine.DisposeAsync().ConfigureAwait(false);
            DeleteStubs(dir, config, devices);
            if (devices.HostNetwork is { } network)
            {
                await network.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    // The guest's times are its own uptime: they start when the guest's kernel does, a little after the VMM started.
    internal static void TraceGuestBoot(PhaseTrace trace, string subject, long machineUp, long initUptimeMs, long agentUptimeMs)
    {
        if (initUptimeMs > 0)
        {
            trace.Measured(subject, "guest kernel to /init (guest clock)", initUptimeMs);
        }

        if (initUptimeMs > 0 && agentUptimeMs >= initUptimeMs)
        {
            trace.Measured(subject, "guest /init to agent serving (guest clock)", agentUptimeMs - initUptimeMs);
        }

        trace.Phase(subject, "VMM started to agent answering", machineUp);
    }

    /// <summary>
    /// Why the agent's connection closed, for the error of a call it cut off: whether the VMM has exited (awaited up
    /// to <paramref name="wait"/>: the guest powers off once its agent is gone) and what the guest's init and kernel
    /// last said about it on the console (an agent's exit, the OOM killer, a panic), quoted as untrusted text.
    /// </summary>
    internal static async Task<string> ExplainAgentLossAsync(Task<VmExit> exited, Func<IReadOnlyList<string>> consoleOutput, TimeSpan wait)
    {
        VmExit? exit = null;
        try
        {
            exit = await exited.WaitAsync(wait).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        string state = exit is null
            ? "the VMM still runs"
            : $"the VMM exited with status {exit.ExitCode}{(exit.Killed ? " (killed by the shim)" : "")}";
        string[] said = [.. consoleOutput().Where(IsAboutAnEnd).TakeLast(3)];
        return said.Length == 0 ? $" ({state})" : $" ({state}; the guest console said: {Quote(said)})";
    }

    /// <summary>The error of a boot whose VMM exited before the agent answered: its status and its last output lines.</summary>
    internal static string ExitedBeforeTheAgentAnswered(VmExit exit, IReadOnlyList<string> output) =>
        $"vm \"{exit.VmId}\": the VMM exited with status {exit.ExitCode} before the agent answered" +
        (output.Count == 0 ? "" : $"; its last output: {Quote(output.TakeLast(3))}");

    private static string Quote(IEnumerable<string> lines) => string.Join(" | ", lines.Select(line => UntrustedText.Shown(line.Trim(), 160)));

    private static bool IsAboutAnEnd(string line) =>
        line.Contains("fc-init: fc-agent exited", StringComparison.Ordinal) || line.Contains("fc-init: FATAL", StringComparison.Ordinal)
        || line.Contains("Out of memory", StringComparison.Ordinal) || line.Contains("Kernel panic", StringComparison.Ordinal);

    /// <summary>Takes a free stub drive; its id is what the agent mounts.</summary>
    public (int Slot, string DriveId) AcquireSlot(string containerId)
    {
        lock (_gate)
        {
            int slot = Array.IndexOf(_slotsInUse, false);
            if (slot < 0)
            {
                throw new InvalidOperationException(
                    $"vm \"{Machine.VmId}\" holds {_slotsInUse.Length} containers already; container \"{containerId}\" needs a free slot (container_slots)");
            }

            _slotsInUse[slot] = true;
            return (slot, DriveId(slot));
        }
    }

    public void ReleaseSlot(int slot)
    {
        lock (_gate)
        {
            _slotsInUse[slot] = false;
        }
    }

    /// <summary>
    /// Takes <paramref name="count"/> free read-only layer slots at once, or none: too few free gives an error naming
    /// layer_slots and the count needed.
    /// </summary>
    public ImmutableArray<(int Slot, string DriveId)> AcquireLayerSlots(string containerId, int count)
    {
        lock (_gate)
        {
            int[] free = [.. Enumerable.Range(0, _layerSlotsInUse.Length).Where(slot => !_layerSlotsInUse[slot]).Take(count)];
            if (free.Length < count)
            {
                throw new InvalidOperationException(
                    $"vm \"{Machine.VmId}\" has {free.Length} free of {_layerSlotsInUse.Length} layer slots (layer_slots); container \"{containerId}\" needs {count}, one per erofs layer");
            }

            foreach (int slot in free)
            {
                _layerSlotsInUse[slot] = true;
            }

            return [.. free.Select(slot => (slot, LayerDriveId(slot)))];
        }
    }

    /// <summary>Gives layer slots back.</summary>
    public void ReleaseLayerSlots(IEnumerable<int> slots)
    {
        lock (_gate)
        {
            foreach (int slot in slots)
            {
                _layerSlotsInUse[slot] = false;
            }
        }
    }

    /// <summary>The size limit of an erofs container's upper layer in guest memory, in MiB (0: half the guest's memory).</summary>
    public int LayerUpperMib { get; }

    /// <summary>How many layer slots the VM has (layer_slots when it booted).</summary>
    public int LayerSlotCount => _layerSlotsInUse.Length;

    /// <summary>The sparse stub layer slot <paramref name="slot"/> was booted with, and is patched back to.</summary>
    public string LayerStubPath(int slot) => LayerStubPath(Dir, slot);

    /// <summary>Three fresh vsock ports (stdin, stdout, stderr), never reused in this VM.</summary>
    public (uint Stdin, uint Stdout, uint Stderr) NextPorts()
    {
        lock (_gate)
        {
            uint first = _nextPort;
            _nextPort += 3;
            return (first, first + 1, first + 2);
        }
    }

    public string ImagePath(int slot) => Path.Combine(Dir.RootPath, $"rootfs{slot}.img");

    /// <summary>The empty file slot <paramref name="slot"/>'s drive was booted with, and is patched back to when a snapshot's block file leaves it.</summary>
    public string StubPath(int slot) => StubPath(Dir, slot);

    /// <summary>
    /// Ends the VM. The drive mounts, whose files outlive the VM, are flushed and unmounted first (bounded by the larger
    /// of <paramref name="flushTimeout"/> and 5 s); then the VMM is stopped at once: nothing else in the guest outlives
    /// the VM (the containers' rootfs images go with the VM directory), so a power-off has nothing to save. A grace
    /// period for one was only ever a wait under QEMU: nothing in the guest acts on the ACPI power button (no daemon
    /// listens for it, and the guest's init powers off only once its agent has exited), so StopVM spent the whole
    /// timeout before QEMU was told to quit.
    /// </summary>
    public async Task StopAsync(TimeSpan flushTimeout, CancellationToken cancellationToken)
    {
        await VmDriveMount.UnmountAllAsync(_driveMounts, Machine, Agent, flushTimeout, _logger, cancellationToken).ConfigureAwait(false);
        await DisposeAgentAsync().ConfigureAwait(false);
        if (!Machine.Exited.IsCompleted)
        {
            await Machine.StopAsync(TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            await DisposeAgentAsync().ConfigureAwait(false);
            await Machine.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            DeleteFiles();
            if (_hostNetwork is not null)
            {
                await _hostNetwork.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    // The agent connection is closed by StopAsync and again by DisposeAsync; the client must see it once.
    private ValueTask DisposeAgentAsync() =>
        Interlocked.Exchange(ref _agentDisposed, 1) == 0 ? Agent.DisposeAsync() : ValueTask.CompletedTask;

    private void DeleteFiles()
    {
        for (int slot = 0; slot < _slotsInUse.Length; slot++)
        {
            File.Delete(StubPath(Dir, slot));
            File.Delete(ImagePath(slot));
        }

        for (int slot = 0; slot < _layerSlotsInUse.Length; slot++)
        {
            File.Delete(LayerStubPath(Dir, slot));
        }

        // Nothing is ever mounted in the VM directory on the host, so removing what the VMM left is safe.
        try
        {
            Directory.Delete(Dir.RootPath, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private static string VsockPathOf(IVirtualMachine machine, VmDir dir) => machine.VsockHostPath ?? dir.FirecrackerVSockPath;

    private static Task<IVirtualMachine> CreateMachineAsync(RuntimeConfig config, MachineSpec spec, VmDir dir, ILogger logger, CancellationToken cancellationToken) =>
        new VirtualMachineFactory(new VmmSettings(
                config.Vmm, RuntimeConfig.VmmCacheDirectory, config.FirecrackerBinaryPath,
                TcgTranslationCacheMib: config.TcgTranslationCacheMib,
                Jail: config.Jail.Enabled ? config.Jail.ToSettings(Environment.ProcessPath) : null))
            .CreateAsync(spec, dir, logger, cancellationToken);

    // A VM that never came up leaves no drives behind (the host files of drive mounts are not the VM's).
    private static void DeleteStubs(VmDir dir, RuntimeConfig config, VmDevices devices)
    {
        for (int slot = 0; slot < config.ContainerSlots; slot++)
        {
            File.Delete(StubPath(dir, slot));
        }

        for (int slot = 0; slot < config.LayerSlots; slot++)
        {
            File.Delete(LayerStubPath(dir, slot));
        }

        foreach (VmDriveMount mount in devices.DriveMounts)
        {
            File.Delete(mount.StubPath(dir));
        }
    }

    private static string DriveId(int slot) => $"stub{slot}";

    private static string StubPath(VmDir dir, int slot) => Path.Combine(dir.RootPath, DriveId(slot));

    private static string LayerDriveId(int slot) => $"layer{slot}";

    private static string LayerStubPath(VmDir dir, int slot) => Path.Combine(dir.RootPath, LayerDriveId(slot));
}
