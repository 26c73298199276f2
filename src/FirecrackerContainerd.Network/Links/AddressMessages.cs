using System.Buffers.Binary;
using System.Net;
using FirecrackerContainerd.Network.Netlink;
using static FirecrackerContainerd.Network.Links.RtnetlinkConstants;
using static FirecrackerContainerd.Network.Netlink.NetlinkConstants;

namespace FirecrackerContainerd.Network.Links;

/// <summary>Builds the <c>RTM_GETADDR</c> dump and parses its <c>RTM_NEWADDR</c> answers.</summary>
internal static class AddressMessages
{
    /// <summary><c>RTM_GETADDR</c> of every address of every family (a dump).</summary>
    public static NetlinkMessageBuilder Dump() =>
        new NetlinkMessageBuilder(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP).Fixed(new byte[IfAddrMessageSize]);

    /// <summary>The address an <c>RTM_NEWADDR</c> message describes, or null for a family other than IPv4 and IPv6.</summary>
    /// <exception cref="NetlinkProtocolException">The message is cut short, or its address has the wrong length.</exception>
    public static InterfaceAddress? Parse(NetlinkMessage message)
    {
        if (message.Type != RTM_NEWADDR)
        {
            throw new NetlinkProtocolException($"rtnetlink: expected RTM_NEWADDR ({RTM_NEWADDR}), got message type {message.Type}");
        }

        // struct ifaddrmsg: family (u8), prefixlen (u8), flags (u8), scope (u8), index (u32).
        IReadOnlyList<NetlinkAttribute> attributes = message.Attributes(IfAddrMessageSize);
        ReadOnlySpan<byte> header = message.Payload.Span;
        byte family = header[0];
        if (family is not (AF_INET or AF_INET6))
        {
            return null;
        }

        NetlinkAttribute address = attributes.Find(IFA_LOCAL) ?? attributes.Find(IFA_ADDRESS)
            ?? throw new NetlinkProtocolException($"rtnetlink: address on ifindex {BinaryPrimitives.ReadUInt32LittleEndian(header[4..])} has neither IFA_LOCAL nor IFA_ADDRESS");
        return new InterfaceAddress(
            (int)BinaryPrimitives.ReadUInt32LittleEndian(header[4..]),
            ReadAddress(family, address),
            header[1],
            header[3],
            attributes.Find(IFA_LABEL)?.AsString());
    }

    /// <summary>An IPv4 or IPv6 address attribute, checked against the family's length.</summary>
    public static IPAddress ReadAddress(byte family, NetlinkAttribute attribute)
    {
        int expected = family == AF_INET ? 4 : 16;
        if (attribute.Value.Length != expected)
        {
            throw new NetlinkProtocolException($"rtnetlink: attribute {attribute.Type} of family {family} has {attribute.Value.Length} bytes, expected {expected}");
        }

        return new IPAddress(attribute.Value.Span);
    }
}
