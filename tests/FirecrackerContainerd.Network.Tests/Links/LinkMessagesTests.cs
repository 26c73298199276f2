using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.Tests.Support;

namespace FirecrackerContainerd.Network.Tests.Links;

// Expected bytes follow linux/netlink.h (struct nlmsghdr), linux/rtnetlink.h (struct ifinfomsg, struct ifaddrmsg,
// struct rtmsg) and linux/if_link.h (IFLA_*), little-endian as on x86-64.
public class LinkMessagesTests
{
    [Fact]
    public void Dump_is_a_getlink_dump_with_an_empty_ifinfomsg()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "20000000",          // nlmsg_len 32
            "1200",              // nlmsg_type RTM_GETLINK (18)
            "0103",              // nlmsg_flags NLM_F_REQUEST | NLM_F_DUMP (0x301)
            "01000000",          // nlmsg_seq 1
            "00000000",          // nlmsg_pid 0
            "00 00 0000",        // ifi_family AF_UNSPEC, pad, ifi_type 0
            "00000000",          // ifi_index 0
            "00000000",          // ifi_flags 0
            "00000000")),        // ifi_change 0
            Bytes.Show(LinkMessages.Dump().Build(1)));
    }

    [Fact]
    public void GetByName_carries_the_name_as_ifla_ifname()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "2c000000 1200 0100 01000000 00000000", // len 44, RTM_GETLINK, NLM_F_REQUEST, seq 1, pid 0
            "00 00 0000 00000000 00000000 00000000", // ifinfomsg: all zero
            "0900 0300",                             // nla_len 9, IFLA_IFNAME (3)
            "65746830 00 000000")),                  // "eth0\0" and 3 bytes of padding
            Bytes.Show(LinkMessages.GetByName("eth0").Build(1)));
    }

    [Fact]
    public void GetByIndex_carries_the_index_in_the_ifinfomsg()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "20000000 1200 0100 06000000 00000000", // len 32, RTM_GETLINK, NLM_F_REQUEST, seq 6, pid 0
            "00 00 0000",                            // ifi_family AF_UNSPEC, pad, ifi_type
            "2a000000",                              // ifi_index 42
            "00000000 00000000")),                   // ifi_flags, ifi_change
            Bytes.Show(LinkMessages.GetByIndex(42).Build(6)));
    }

    [Fact]
    public void SetUp_changes_only_the_up_flag()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "20000000 1000 0500 07000000 00000000", // len 32, RTM_NEWLINK (16), REQUEST|ACK, seq 7, pid 0
            "00 00 0000",                            // ifi_family AF_UNSPEC, pad, ifi_type
            "05000000",                              // ifi_index 5
            "01000000",                              // ifi_flags IFF_UP
            "01000000")),                            // ifi_change IFF_UP
            Bytes.Show(LinkMessages.SetUp(5, up: true).Build(7)));
        Assert.Equal(Bytes.Show(Bytes.Of(
            "20000000 1000 0500 07000000 00000000",
            "00 00 0000 05000000",
            "00000000",                              // ifi_flags 0: down
            "01000000")),                            // ifi_change IFF_UP
            Bytes.Show(LinkMessages.SetUp(5, up: false).Build(7)));
    }

    [Fact]
    public void SetMtu_carries_ifla_mtu()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "28000000 1000 0500 02000000 00000000", // len 40, RTM_NEWLINK, REQUEST|ACK, seq 2
            "00 00 0000 05000000 00000000 00000000", // ifinfomsg for ifindex 5, no flag change
            "0800 0400",                             // nla_len 8, IFLA_MTU (4)
            "dc050000")),                            // 1500
            Bytes.Show(LinkMessages.SetMtu(5, 1500).Build(2)));
    }

    [Fact]
    public void Delete_is_a_dellink_of_the_index()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "20000000 1100 0500 03000000 00000000", // len 32, RTM_DELLINK (17), REQUEST|ACK, seq 3
            "00 00 0000 0c000000 00000000 00000000")), // ifinfomsg for ifindex 12
            Bytes.Show(LinkMessages.Delete(12).Build(3)));
    }

    [Fact]
    public void Parse_reads_index_name_mac_mtu_flags_and_kind()
    {
        byte[] payload = Bytes.Of(
            "00 00 0100",                     // ifi_family, pad, ifi_type ARPHRD_ETHER
            "07000000",                       // ifi_index 7
            "43100100",                       // ifi_flags UP|BROADCAST|RUNNING|MULTICAST|LOWER_UP (0x11043)
            "00000000",                       // ifi_change
            "0a00 0100 02aabbccddee 0000",    // IFLA_ADDRESS (len 10) 02:aa:bb:cc:dd:ee, 2 bytes of padding
            "0900 0300 76657468 00 000000",   // IFLA_IFNAME (len 9) "veth\0", 3 bytes of padding
            "0800 0400 78050000",             // IFLA_MTU 1400
            "1000 1280",                      // IFLA_LINKINFO (18) | NLA_F_NESTED, len 16
            "0900 0100 76657468 00 000000");  //   IFLA_INFO_KIND "veth\0"

        Link link = LinkMessages.Parse(new NetlinkMessage(16, 0, 1, 0, payload));

        Assert.Equal(new Link(7, "veth", "02:aa:bb:cc:dd:ee", 1400, 0x11043, "veth"), link);
        Assert.True(link.IsUp);
        Assert.True(link.HasCarrier);
    }

    [Fact]
    public void Parse_rejects_a_link_without_a_name()
    {
        byte[] payload = Bytes.Of("00 00 0100 07000000 00000000 00000000", "0800 0400 78050000");
        var e = Assert.Throws<NetlinkProtocolException>(() => LinkMessages.Parse(new NetlinkMessage(16, 0, 1, 0, payload)));
        Assert.Contains("ifindex 7 has no IFLA_IFNAME", e.Message);
    }

    [Fact]
    public void Parse_rejects_a_truncated_ifinfomsg()
    {
        var e = Assert.Throws<NetlinkProtocolException>(() => LinkMessages.Parse(new NetlinkMessage(16, 0, 1, 0, Bytes.Hex("00000100 07000000"))));
        Assert.Contains("less than its 16-byte header", e.Message);
    }
}
