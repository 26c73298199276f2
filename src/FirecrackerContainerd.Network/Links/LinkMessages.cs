using System.Buffers.Binary;
using FirecrackerContainerd.Network.Netlink;
using static FirecrackerContainerd.Network.Links.RtnetlinkConstants;
using static FirecrackerContainerd.Network.Netlink.NetlinkConstants;

namespace FirecrackerContainerd.Network.Links;

/// <summary>Builds the <c>RTM_*LINK</c> requests and parses their <c>RTM_NEWLINK</c> answers.</summary>
internal static class LinkMessages
{
    /// <summary><c>RTM_GETLINK</c> of every link (a dump).</summary>
    public static NetlinkMessageBuilder Dump() =>
        new NetlinkMessageBuilder(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP).Fixed(IfInfo(0, 0, 0));

    /// <summary><c>RTM_GETLINK</c> of the link named <paramref name="name"/> (<c>IFLA_IFNAME</c>).</summary>
    public static NetlinkMessageBuilder GetByName(string name) =>
        new NetlinkMessageBuilder(RTM_GETLINK, NLM_F_REQUEST).Fixed(IfInfo(0, 0, 0)).AttributeString(IFLA_IFNAME, name);

    /// <summary><c>RTM_GETLINK</c> of the link with index <paramref name="index"/>.</summary>
    public static NetlinkMessageBuilder GetByIndex(int index) =>
        new NetlinkMessageBuilder(RTM_GETLINK, NLM_F_REQUEST).Fixed(IfInfo(index, 0, 0));

    /// <summary><c>RTM_NEWLINK</c> that changes only <c>IFF_UP</c> (<c>ifi_change</c> = <c>IFF_UP</c>).</summary>
    public static NetlinkMessageBuilder SetUp(int index, bool up) =>
        new NetlinkMessageBuilder(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK).Fixed(IfInfo(index, up ? IFF_UP : 0, IFF_UP));

    /// <summary><c>RTM_NEWLINK</c> that sets <c>IFLA_MTU</c>.</summary>
    public static NetlinkMessageBuilder SetMtu(int index, int mtu) =>
        new NetlinkMessageBuilder(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK).Fixed(IfInfo(index, 0, 0)).AttributeU32(IFLA_MTU, checked((uint)mtu));

    /// <summary><c>RTM_DELLINK</c> of the link with index <paramref name="index"/>.</summary>
    public static NetlinkMessageBuilder Delete(int index) =>
        new NetlinkMessageBuilder(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK).Fixed(IfInfo(index, 0, 0));

    /// <summary>The link an <c>RTM_NEWLINK</c> message describes.</summary>
    /// <exception cref="NetlinkProtocolException">The message is not <c>RTM_NEWLINK</c>, is cut short, or has no name.</exception>
    public static Link Parse(NetlinkMessage message)
    {
        if (message.Type != RTM_NEWLINK)
        {
            throw new NetlinkProtocolException($"rtnetlink: expected RTM_NEWLINK ({RTM_NEWLINK}), got message type {message.Type}");
        }

        IReadOnlyList<NetlinkAttribute> attributes = message.Attributes(IfInfoMessageSize);
        ReadOnlySpan<byte> header = message.Payload.Span;
        int index = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
        string name = attributes.Find(IFLA_IFNAME)?.AsString()
            ?? throw new NetlinkProtocolException($"rtnetlink: link with ifindex {index} has no IFLA_IFNAME");
        string? mac = attributes.Find(IFLA_ADDRESS) is { } address ? FormatMac(address.Value.Span) : null;
        int mtu = attributes.Find(IFLA_MTU) is { } mtuAttribute ? (int)mtuAttribute.AsU32() : 0;
        string? kind = attributes.Find(IFLA_LINKINFO)?.AsNested().Find(IFLA_INFO_KIND)?.AsString();
        return new Link(index, name, mac, mtu, flags, kind);
    }

    /// <summary>A hardware address as <c>aa:bb:cc:dd:ee:ff</c> (lower case, as Go's <c>net.HardwareAddr</c> prints it).</summary>
    public static string? FormatMac(ReadOnlySpan<byte> bytes) =>
        bytes.Length == 0 ? null : string.Join(':', bytes.ToArray().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    // struct ifinfomsg: family (u8), pad (u8), type (u16), index (s32), flags (u32), change (u32).
    private static byte[] IfInfo(int index, uint flags, uint change)
    {
        byte[] bytes = new byte[IfInfoMessageSize];
        bytes[0] = AF_UNSPEC;
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), index);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12), change);
        return bytes;
    }
}
