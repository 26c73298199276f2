using FirecrackerContainerd.Vmm.Qemu;

namespace FirecrackerContainerd.Vmm.Selection;

/// <summary>The host-side settings a <see cref="VirtualMachineFactory"/> builds machines from: which VMM, its programs, and its cache.</summary>
/// <param name="Vmm">The configured VMM: <c>auto</c>, <c>firecracker</c> or <c>qemu</c> (see <see cref="VmmSelector"/>).</param>
/// <param name="CacheDirectory">Where verdicts about this host are kept across VMs and processes (the KVM boot probe's).</param>
/// <param name="FirecrackerBinary">The Firecracker program: a name on PATH or a path.</param>
/// <param name="QemuBinary">The QEMU program: a name on PATH or a path.</param>
/// <param name="TcgTranslationCacheMib">QEMU's TCG translated-code cache in MiB, 0 for QEMU's default (see <see cref="QemuOptions"/>).</param>
/// <param name="Jail">How QEMU machines are confined (docs/jail.md); null runs them unconfined.</param>
public sealed record VmmSettings(
    string Vmm,
    string CacheDirectory,
    string FirecrackerBinary = "firecracker",
    string QemuBinary = QemuOptions.DefaultQemuBinary,
    int TcgTranslationCacheMib = 0,
    Jail.JailSettings? Jail = null);
