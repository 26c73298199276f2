using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Firecracker;

/// <summary>
/// The kernel command line a Firecracker guest boots with: the arguments Firecracker's own guests use for its devices,
/// then the machine's. Firecracker adds <c>root=</c> itself for a root drive, and before version 1.8 its
/// <c>virtio_mmio.device=</c> entries.
/// </summary>
/// <remarks>
/// The serial console stays (the guest's last words reach the shim's log and its error messages); <c>pci=off</c>: there
/// is no PCI bus; the i8042 flags keep the kernel from probing the ports Firecracker's minimal keyboard controller lacks
/// (it has one for SendCtrlAltDel); <c>random.trust_cpu=on</c> seeds the guest's random generator from RDRAND, as under
/// QEMU, so the agent's first getrandom() does not wait.
/// </remarks>
internal static class FirecrackerKernelArgs
{
    /// <summary>What every Firecracker guest gets before the machine's own arguments.</summary>
    public const string DeviceArgs = "console=ttyS0 pci=off i8042.noaux i8042.nomux i8042.dumbkbd i8042.nopnp random.trust_cpu=on";

    /// <summary>The whole command line of <paramref name="spec"/>'s guest.</summary>
    public static string Of(MachineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec.Boot.KernelArgs is { Length: > 0 } own ? DeviceArgs + " " + own : DeviceArgs + " reboot=k panic=-1";
    }
}
