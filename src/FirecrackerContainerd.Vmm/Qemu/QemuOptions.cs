namespace FirecrackerContainerd.Vmm.Qemu;

/// <summary>How guest instructions run under QEMU.</summary>
public enum QemuAccelerator
{
    /// <summary>Software emulation (TCG): slow, works everywhere.</summary>
    Tcg,

    /// <summary>Hardware virtualisation; only where a probe boot proved it works.</summary>
    Kvm,
}

/// <summary>Host-side settings of the QEMU driver (the machine itself is described by a MachineSpec).</summary>
/// <param name="QemuBinary">qemu-system-x86_64, by path or name on PATH.</param>
/// <param name="VsockDeviceBinary">The vhost-user vsock device executable (fc-vhost-vsock) to run beside QEMU, or null to serve the device in this process.</param>
/// <param name="Accelerator">KVM or TCG.</param>
/// <param name="StartTimeout">How long the VMM and the device get to create their sockets.</param>
/// <param name="TcgTranslationCacheMib">
/// The size of TCG's translated-code cache (QEMU's <c>tb-size</c>) in MiB, or 0 for QEMU's own default; ignored under KVM.
/// QEMU fills the cache as the guest runs new code and flushes it whole when it is full, so a smaller cache bounds
/// QEMU's memory outside guest RAM at the price of translating again after a flush.
/// </param>
/// <param name="Jail">
/// Confines QEMU and the vsock device, each its own process through fc-jail (docs/jail.md); null runs QEMU as this
/// process's user, unconfined.
/// </param>
public sealed record QemuOptions(
    string QemuBinary = QemuOptions.DefaultQemuBinary,
    string? VsockDeviceBinary = null,
    QemuAccelerator Accelerator = QemuAccelerator.Tcg,
    TimeSpan StartTimeout = default,
    int TcgTranslationCacheMib = 0,
    Jail.JailSettings? Jail = null)
{
    /// <summary>The QEMU system emulator for x86_64 guests.</summary>
    public const string DefaultQemuBinary = "qemu-system-x86_64";

    /// <summary>The start timeout, 30 s unless set.</summary>
    public TimeSpan EffectiveStartTimeout => StartTimeout == default ? TimeSpan.FromSeconds(30) : StartTimeout;
}
