namespace FirecrackerContainerd.Network.Tap;

/// <summary>How to make a tap device.</summary>
/// <param name="Name">The name (at most 15 bytes); null lets the kernel pick the next free <c>tapN</c>.</param>
/// <param name="Mtu">The MTU to set, or null to keep the kernel's default (1500).</param>
/// <param name="OwnerUid">The uid that may attach to the tap without <c>CAP_NET_ADMIN</c> (<c>TUNSETOWNER</c>), or null.</param>
/// <param name="OwnerGid">The gid that may attach to the tap without <c>CAP_NET_ADMIN</c> (<c>TUNSETGROUP</c>), or null.</param>
/// <param name="VirtioNetHeader">
/// Whether to ask for <c>IFF_VNET_HDR</c>. Only the descriptor that makes the device carries it; a VMM that opens
/// the persistent tap by name sets its own (QEMU and Firecracker both ask for it). It is on by default so that the
/// flags the device reports match what both VMMs use (docs/network.md).
/// </param>
public sealed record TapOptions(string? Name = null, int? Mtu = null, uint? OwnerUid = null, uint? OwnerGid = null, bool VirtioNetHeader = true);
