using FirecrackerContainerd.Network.Netlink;
using static FirecrackerContainerd.Network.Links.RtnetlinkConstants;
using static FirecrackerContainerd.Network.Netlink.NetlinkConstants;

namespace FirecrackerContainerd.Network.Links;

/// <summary>Builds the <c>RTM_GETROUTE</c> dump and parses its <c>RTM_NEWROUTE</c> answers.</summary>
internal static class RouteMessages
{
    /// <summary><c>RTM_GETROUTE</c> of every route of every family and table (a dump).</summary>
    public static NetlinkMessageBuilder Dump() =>
        new NetlinkMessageBuilder(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP).Fixed(new byte[RtMessageSize]);

    /// <summary>The route an <c>RTM_NEWROUTE</c> message describes, or null for a family other than IPv4 and IPv6.</summary>
    /// <exception cref="NetlinkProtocolException">The message is cut short, or an address has the wrong length.</exception>
    public static Route? Parse(NetlinkMessage message)
    {
        if (message.Type != RTM_NEWROUTE)
        {
            throw new NetlinkProtocolException($"rtnetlink: expected RTM_NEWROUTE ({RTM_NEWROUTE}), got message type {message.Type}");
        }

        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags (u32).
        IReadOnlyList<NetlinkAttribute> attributes = message.Attributes(RtMessageSize);
        ReadOnlySpan<byte> header = message.Payload.Span;
        byte family = header[0];
        if (family is not (AF_INET or AF_INET6))
        {
            return null;
        }

        return new Route(
            family,
            attributes.Find(RTA_DST) is { } dst ? AddressMessages.ReadAddress(family, dst) : null,
            header[1],
            attributes.Find(RTA_GATEWAY) is { } gateway ? AddressMessages.ReadAddress(family, gateway) : null,
            attributes.Find(RTA_OIF) is { } oif ? (int)oif.AsU32() : null,
            attributes.Find(RTA_TABLE)?.AsU32() ?? header[4],
            header[5],
            header[6],
            header[7],
            attributes.Find(RTA_PRIORITY)?.AsU32(),
            attributes.Find(RTA_PREFSRC) is { } source ? AddressMessages.ReadAddress(family, source) : null);
    }
}
