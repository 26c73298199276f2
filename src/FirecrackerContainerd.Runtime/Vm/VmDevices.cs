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
/// <param name="NetworkNamespace">A network namespace file the VMM runs in (a Kubernetes pod's), or null for the shim's own.</param>
/// <param name="HostNetwork">
/// What the host set up for the VM's network (a pod's TAP device and redirect), released when the VM ends; the VM
/// owns it from the moment it is booted with it, whether or not the boot succeeds.
/// </param>
public sealed record VmDevices(
    ImmutableArray<NetworkInterface> NetworkInterfaces,
    ImmutableArray<VmDriveMount> DriveMounts,
    BalloonDevice? Balloon,
    string? NetworkNamespace = null,
    IAsyncDisposable? HostNetwork = null)
{
    /// <summary>No devices beyond the container slots.</summary>
    public static VmDevices None { get; } = new([], [], null);
}
