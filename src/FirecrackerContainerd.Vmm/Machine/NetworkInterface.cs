namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>A virtio-net interface backed by a host TAP device.</summary>
/// <param name="IfaceId">Identifier of the interface (letters, digits and '_').</param>
/// <param name="HostDevName">Name of the host TAP device (at most 15 bytes, the kernel's IFNAMSIZ - 1).</param>
/// <param name="GuestMac">MAC address the guest sees, or null to let the VMM choose.</param>
/// <param name="AllowMmds">Whether the metadata service answers on this interface.</param>
/// <param name="RxRateLimiter">Optional limiter on traffic towards the guest.</param>
/// <param name="TxRateLimiter">Optional limiter on traffic from the guest.</param>
public sealed record NetworkInterface(
    string IfaceId,
    string HostDevName,
    string? GuestMac = null,
    bool AllowMmds = false,
    RateLimiter? RxRateLimiter = null,
    RateLimiter? TxRateLimiter = null);
