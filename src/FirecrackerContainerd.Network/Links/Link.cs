namespace FirecrackerContainerd.Network.Links;

/// <summary>A network interface as rtnetlink reports it.</summary>
/// <param name="Index">The interface index (<c>ifi_index</c>).</param>
/// <param name="Name">The interface name (<c>IFLA_IFNAME</c>).</param>
/// <param name="Mac">The hardware address as <c>aa:bb:cc:dd:ee:ff</c> (<c>IFLA_ADDRESS</c>), or null for links without one.</param>
/// <param name="Mtu">The MTU (<c>IFLA_MTU</c>).</param>
/// <param name="Flags">The <c>IFF_*</c> flags (<c>ifi_flags</c>).</param>
/// <param name="Kind">The driver kind (<c>IFLA_INFO_KIND</c>: <c>veth</c>, <c>tun</c>, <c>bridge</c>, ...), or null for physical and loopback links.</param>
public sealed record Link(int Index, string Name, string? Mac, int Mtu, uint Flags, string? Kind)
{
    /// <summary>Whether the link is administratively up (<c>IFF_UP</c>).</summary>
    public bool IsUp => (Flags & RtnetlinkConstants.IFF_UP) != 0;

    /// <summary>Whether the link has carrier (<c>IFF_LOWER_UP</c>).</summary>
    public bool HasCarrier => (Flags & RtnetlinkConstants.IFF_LOWER_UP) != 0;

    /// <summary>The name and index, as errors name a device.</summary>
    public override string ToString() => $"{Name} (ifindex {Index})";
}
