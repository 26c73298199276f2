namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>The processor and memory shape of a machine.</summary>
/// <param name="VcpuCount">Number of vCPUs (1 to <see cref="MaxVcpus"/>; 1 or even when SMT is on).</param>
/// <param name="MemSizeMib">Guest memory in MiB.</param>
/// <param name="Smt">Whether simultaneous multithreading is exposed to the guest.</param>
public sealed record MachineConfig(int VcpuCount, int MemSizeMib, bool Smt = false)
{
    /// <summary>Firecracker's upper bound on vCPUs; QEMU accepts more but the model keeps one limit.</summary>
    public const int MaxVcpus = 32;
}
