using System.Collections.Immutable;

namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>Everything a VMM driver needs to build one machine; VMM-neutral, validated by <see cref="MachineSpecValidator"/>.</summary>
/// <param name="VmId">Identifier of the machine (the containerd-style VM id).</param>
/// <param name="Boot">Kernel, initrd and command line.</param>
/// <param name="Machine">vCPUs, memory and SMT.</param>
/// <param name="Drives">Block devices, at most one of them the root drive.</param>
/// <param name="Vsock">The vsock device the agent is reached through, or null.</param>
/// <param name="NetworkInterfaces">Network interfaces.</param>
/// <param name="Balloon">Memory balloon, or null.</param>
/// <param name="Mmds">Metadata service, or null.</param>
/// <param name="NetworkNamespace">
/// A network namespace file the VMM runs in (a Kubernetes pod's), where the TAP devices of
/// <paramref name="NetworkInterfaces"/> are; null for the caller's own namespace.
/// </param>
public sealed record MachineSpec(
    string VmId,
    BootSource Boot,
    MachineConfig Machine,
    ImmutableArray<Drive> Drives,
    VsockDevice? Vsock = null,
    ImmutableArray<NetworkInterface> NetworkInterfaces = default,
    BalloonDevice? Balloon = null,
    MmdsConfig? Mmds = null,
    string? NetworkNamespace = null)
{
    /// <summary>The drives, never default.</summary>
    public ImmutableArray<Drive> Drives { get; init; } = Drives.IsDefault ? [] : Drives;

    /// <summary>The network interfaces, never default.</summary>
    public ImmutableArray<NetworkInterface> NetworkInterfaces { get; init; } =
        NetworkInterfaces.IsDefault ? [] : NetworkInterfaces;

    /// <summary>The root drive, or null when the guest boots from its initrd.</summary>
    public Drive? RootDrive => Drives.FirstOrDefault(d => d.IsRoot);

    /// <summary>Returns a copy where drive <paramref name="driveId"/> is backed by <paramref name="hostPath"/>.</summary>
    public MachineSpec WithDriveHostPath(string driveId, string hostPath)
    {
        var index = -1;
        for (var i = 0; i < Drives.Length && index < 0; i++)
        {
            index = Drives[i].DriveId == driveId ? i : -1;
        }

        if (index < 0)
        {
            throw new ArgumentException($"vm \"{VmId}\" has no drive \"{driveId}\"", nameof(driveId));
        }

        return this with { Drives = Drives.SetItem(index, Drives[index] with { HostPath = hostPath }) };
    }
}
