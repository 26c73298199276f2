using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Firecracker;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vmm.Selection;

/// <summary>Builds the machine the settings ask for: the driver chosen by <see cref="VmmSelector"/>, and under QEMU the accelerator a <see cref="KvmBootProbe"/> proved.</summary>
/// <remarks>
/// Both decisions start from the same <c>/dev/kvm</c> check. Firecracker is chosen on that check alone: the boot
/// proof needs QEMU, which a Firecracker host need not have. The machine is returned unstarted.
/// </remarks>
public sealed partial class VirtualMachineFactory
{
    private readonly VmmSettings _settings;
    private readonly IKvmProbe _kvmDevice;
    private readonly KvmBootProbe _kvmBoot;

    /// <summary>Creates a factory for <paramref name="settings"/>.</summary>
    /// <param name="settings">The configured VMM, its programs and the cache directory.</param>
    public VirtualMachineFactory(VmmSettings settings)
        : this(settings, null)
    {
    }

    /// <summary>Creates a factory whose KVM device check is <paramref name="kvmDevice"/> (tests give a fake one).</summary>
    /// <param name="settings">The configured VMM, its programs and the cache directory.</param>
    /// <param name="kvmDevice">The cheap KVM check both decisions start from (<see cref="KvmDeviceProbe"/> by default).</param>
    internal VirtualMachineFactory(VmmSettings settings, IKvmProbe? kvmDevice)
    {
        ArgumentNullException.ThrowIfNull(settings);
        _settings = settings;
        _kvmDevice = kvmDevice ?? new KvmDeviceProbe();
        _kvmBoot = new KvmBootProbe(settings.CacheDirectory, settings.QemuBinary, device: _kvmDevice);
    }

    /// <summary>Chooses the driver and builds the machine of <paramref name="spec"/> living in <paramref name="vmDir"/>.</summary>
    /// <param name="spec">The machine; under QEMU its kernel and initrd also boot the KVM probe.</param>
    /// <param name="vmDir">The VM directory the VMM runs in.</param>
    /// <param name="logger">Receives the choices with their reasons, then the machine's own log.</param>
    /// <param name="cancellationToken">Cancels the probes.</param>
    public async Task<IVirtualMachine> CreateAsync(MachineSpec spec, VmDir vmDir, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(logger);
        VmmChoice choice = await new VmmSelector(_kvmDevice, logger: logger)
            .SelectAsync(_settings.Vmm, _settings.FirecrackerBinary, cancellationToken).ConfigureAwait(false);
        if (choice.Kind == VmmKind.Firecracker)
        {
            // With jail settings Firecracker starts through its jailer, confined as QEMU would be (docs/jail.md).
            return new FirecrackerMachine(spec, vmDir, new FirecrackerOptions { FirecrackerBinary = _settings.FirecrackerBinary, Jail = _settings.Jail }, logger);
        }

        // The probe boots the machine's own kernel and initramfs, so the verdict holds for exactly what will run.
        AcceleratorVerdict verdict = spec.Boot.InitrdPath is { } initrd
            ? await _kvmBoot.DecideAsync(spec.Boot.KernelImagePath, initrd, cancellationToken).ConfigureAwait(false)
            : new AcceleratorVerdict(QemuAccelerator.Tcg, "without an initrd there is no /init to prove KVM with: using TCG", FromCache: false);
        LogAccelerator(logger, spec.VmId, verdict.Accelerator, verdict.FromCache ? "cached" : "measured", verdict.Reason);
        return new QemuMachine(spec, vmDir, new QemuOptions(_settings.QemuBinary, Accelerator: verdict.Accelerator, TcgTranslationCacheMib: _settings.TcgTranslationCacheMib, Jail: _settings.Jail), logger);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId}: QEMU accelerator {Accelerator} ({Source}): {Reason}")]
    private static partial void LogAccelerator(ILogger logger, string vmId, QemuAccelerator accelerator, string source, string reason);
}
