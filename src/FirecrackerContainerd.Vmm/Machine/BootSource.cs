namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>The kernel, optional initrd and kernel command line a machine boots from.</summary>
/// <param name="KernelImagePath">Host path of the kernel (an ELF vmlinux for Firecracker; QEMU takes one with a PVH entry, or a bzImage).</param>
/// <param name="InitrdPath">Host path of the initrd, or null to boot without one.</param>
/// <param name="KernelArgs">The kernel command line; null lets the VMM use its own default.</param>
public sealed record BootSource(string KernelImagePath, string? InitrdPath = null, string? KernelArgs = null);
