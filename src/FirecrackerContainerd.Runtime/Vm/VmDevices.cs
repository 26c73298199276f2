using System.Collections.Immutable;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// The devices one VM is created with beyond its container slots, from a CreateVM request (a VM a container's
/// Create boots has none): kept apart from the runtime configuration, which only holds what its file can say.
/// </summary>
/// <param name="NetworkInterfaces">Static interfaces on host TAP devices.</param>
/// <param name="DriveMounts">Host files the VM gets as drives and its agent mounts.</param>
/// <param name="Balloon">The memory balloon, or null for none.</param>
public sealed record VmDevices(ImmutableArray<NetworkInterface> NetworkInterfaces, ImmutableArray<VmDriveMount> DriveMounts, BalloonDevice? Balloon)
{
    /// <summary>No devices beyond the container slots.</summary>
    public static VmDevices None { get; } = new([], [], null);
}
