using System.Net;

namespace FirecrackerContainerd.Network.Links;

/// <summary>A route as rtnetlink reports it.</summary>
/// <param name="Family">The address family (2 IPv4, 10 IPv6).</param>
/// <param name="Destination">The destination (<c>RTA_DST</c>), or null for a default route.</param>
/// <param name="DestinationPrefixLength">The destination's prefix length (<c>rtm_dst_len</c>; 0 for a default route).</param>
/// <param name="Gateway">The next hop (<c>RTA_GATEWAY</c>), or null for a directly connected destination.</param>
/// <param name="OutputIndex">The output interface (<c>RTA_OIF</c>), or null.</param>
/// <param name="Table">The routing table (<c>RTA_TABLE</c>, else <c>rtm_table</c>).</param>
/// <param name="Protocol">Who installed it (<c>rtm_protocol</c>: 2 kernel, 3 boot, 4 static, ...).</param>
/// <param name="Scope">The scope (<c>rtm_scope</c>: 0 universe, 253 link, 254 host).</param>
/// <param name="Type">The route type (<c>rtm_type</c>: 1 unicast, 2 local, ...).</param>
/// <param name="Priority">The metric (<c>RTA_PRIORITY</c>), or null.</param>
/// <param name="PreferredSource">The preferred source address (<c>RTA_PREFSRC</c>), or null.</param>
public sealed record Route(
    byte Family,
    IPAddress? Destination,
    int DestinationPrefixLength,
    IPAddress? Gateway,
    int? OutputIndex,
    uint Table,
    byte Protocol,
    byte Scope,
    byte Type,
    uint? Priority,
    IPAddress? PreferredSource)
{
    /// <summary>Whether this is a default route (no destination, prefix length 0).</summary>
    public bool IsDefault => DestinationPrefixLength == 0;
}
