using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.Tests.Support;

namespace FirecrackerContainerd.Network.Tests.Netlink;

public class NetlinkParserTests
{
    [Fact]
    public void ParseAll_splits_a_buffer_into_aligned_messages()
    {
        byte[] buffer = Bytes.Of(
            "15000000 1000 0200 05000000 34120000", // len 21, type 16, MULTI, seq 5, pid 0x1234
            "01020304 05 000000",                   // 5 payload bytes, then 3 bytes of padding
            "14000000 0300 0200 05000000 34120000", // NLMSG_DONE, len 20
            "00000000");                            // its error field

        List<NetlinkMessage> messages = NetlinkMessage.ParseAll(buffer);

        Assert.Equal(2, messages.Count);
        Assert.Equal((ushort)16, messages[0].Type);
        Assert.Equal((ushort)2, messages[0].Flags);
        Assert.Equal(5u, messages[0].Sequence);
        Assert.Equal(0x1234u, messages[0].PortId);
        Assert.Equal(Bytes.Hex("0102030405"), messages[0].Payload.ToArray());
        Assert.Equal((ushort)3, messages[1].Type);
    }

    [Theory]
    [InlineData("10000000 1000 0000 01000000", "less than a 16-byte message header")]           // 12 bytes: a cut header
    [InlineData("20000000 1000 0000 01000000 00000000 0000", "claims 32 bytes, 18 left")]         // length past the end
    [InlineData("08000000 1000 0000 01000000 00000000", "claims 8 bytes, 16 left")]               // length shorter than a header
    public void ParseAll_rejects_truncated_or_overlong_messages(string hex, string expected)
    {
        var e = Assert.Throws<NetlinkProtocolException>(() => NetlinkMessage.ParseAll(Bytes.Hex(hex)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Attributes_mask_the_nested_flag_and_read_strings_and_integers()
    {
        byte[] attributes = Bytes.Of(
            "0900 0300 65746830 00 000000", // IFLA_IFNAME "eth0\0" (nla_len 9, padded)
            "0c00 1280",                    // type 18 | NLA_F_NESTED, len 12
            "0800 0100 74756e00");          //   IFLA_INFO_KIND "tun\0"

        IReadOnlyList<NetlinkAttribute> parsed = NetlinkAttribute.ParseAll(attributes);

        Assert.Equal("eth0", parsed.Find(3)!.Value.AsString());
        NetlinkAttribute nested = parsed.Find(18)!.Value;
        Assert.Equal("tun", nested.AsNested().Find(1)!.Value.AsString());
    }

    [Theory]
    [InlineData("0800 0100 0000", "claims 8 bytes, 6 left")]    // value cut short
    [InlineData("0200 0100", "claims 2 bytes, 4 left")]         // length smaller than the header
    [InlineData("0800 0100 00000000 0500", "2 bytes left")]     // a second attribute with half a header
    public void Attributes_reject_malformed_input(string hex, string expected)
    {
        var e = Assert.Throws<NetlinkProtocolException>(() => NetlinkAttribute.ParseAll(Bytes.Hex(hex)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AsU32_rejects_a_value_that_is_not_four_bytes()
    {
        var attribute = new NetlinkAttribute(4, Bytes.Hex("0102"));
        Assert.Throws<NetlinkProtocolException>(() => attribute.AsU32());
    }

    [Fact]
    public void Message_attributes_reject_a_payload_shorter_than_its_family_header()
    {
        var message = new NetlinkMessage(16, 0, 1, 0, Bytes.Hex("00000000 01000000"));
        var e = Assert.Throws<NetlinkProtocolException>(() => message.Attributes(16));
        Assert.Contains("less than its 16-byte header", e.Message);
    }
}
