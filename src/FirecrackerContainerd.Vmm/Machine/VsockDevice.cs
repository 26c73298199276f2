namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>A virtio-vsock device whose host side is a hybrid Unix socket (CONNECT/OK protocol).</summary>
/// <param name="GuestCid">Context id of the guest; 0-2 are reserved, so 3 or more.</param>
/// <param name="UdsPath">Path of the host Unix socket as the VMM process sees it (relative to its working directory).</param>
public sealed record VsockDevice(uint GuestCid, string UdsPath)
{
    /// <summary>The smallest context id a guest may use (0 hypervisor, 1 local, 2 host are reserved).</summary>
    public const uint MinGuestCid = 3;
}
