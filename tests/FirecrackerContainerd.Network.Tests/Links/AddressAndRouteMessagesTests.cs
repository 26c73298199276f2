using System.Net;
using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.Tests.Support;

namespace FirecrackerContainerd.Network.Tests.Links;

// struct ifaddrmsg and IFA_* from linux/if_addr.h; struct rtmsg and RTA_* from linux/rtnetlink.h.
public class AddressAndRouteMessagesTests
{
    [Fact]
    public void Address_dump_is_a_getaddr_dump_with_an_empty_ifaddrmsg()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "18000000",          // nlmsg_len 24
            "1600",              // nlmsg_type RTM_GETADDR (22)
            "0103",              // NLM_F_REQUEST | NLM_F_DUMP
            "04000000 00000000", // seq 4, pid 0
            "00 00 00 00",       // ifa_family AF_UNSPEC, ifa_prefixlen, ifa_flags, ifa_scope
            "00000000")),        // ifa_index
            Bytes.Show(AddressMessages.Dump().Build(4)));
    }

    [Fact]
    public void Route_dump_is_a_getroute_dump_with_an_empty_rtmsg()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "1c000000",          // nlmsg_len 28
            "1a00",              // nlmsg_type RTM_GETROUTE (26)
            "0103",              // NLM_F_REQUEST | NLM_F_DUMP
            "04000000 00000000", // seq 4, pid 0
            "00 00 00 00",       // rtm_family, rtm_dst_len, rtm_src_len, rtm_tos
            "00 00 00 00",       // rtm_table, rtm_protocol, rtm_scope, rtm_type
            "00000000")),        // rtm_flags
            Bytes.Show(RouteMessages.Dump().Build(4)));
    }

    [Fact]
    public void Address_parse_prefers_ifa_local_and_reads_prefix_scope_and_label()
    {
        byte[] payload = Bytes.Of(
            "02 18 80 00",                 // AF_INET, prefix 24, IFA_F_PERMANENT, scope universe
            "03000000",                    // ifa_index 3
            "0800 0100 0a000001",          // IFA_ADDRESS 10.0.0.1 (the peer on point-to-point links)
            "0800 0200 0a000002",          // IFA_LOCAL 10.0.0.2
            "0900 0300 65746830 00 000000"); // IFA_LABEL "eth0"

        InterfaceAddress? address = AddressMessages.Parse(new NetlinkMessage(20, 0, 1, 0, payload));

        Assert.Equal(new InterfaceAddress(3, IPAddress.Parse("10.0.0.2"), 24, 0, "eth0"), address);
        Assert.Equal("10.0.0.2/24", address!.ToString());
    }

    [Fact]
    public void Address_parse_skips_families_other_than_ip()
    {
        byte[] payload = Bytes.Of("11 00 00 00 03000000"); // AF_PACKET (17)
        Assert.Null(AddressMessages.Parse(new NetlinkMessage(20, 0, 1, 0, payload)));
    }

    [Fact]
    public void Address_parse_rejects_an_address_of_the_wrong_length()
    {
        byte[] payload = Bytes.Of("02 18 00 00 03000000", "0700 0200 0a0000 00"); // IFA_LOCAL of 3 bytes
        var e = Assert.Throws<NetlinkProtocolException>(() => AddressMessages.Parse(new NetlinkMessage(20, 0, 1, 0, payload)));
        Assert.Contains("has 3 bytes, expected 4", e.Message);
    }

    [Fact]
    public void Route_parse_reads_a_default_route_through_a_gateway()
    {
        byte[] payload = Bytes.Of(
            "02 00 00 00",           // AF_INET, dst_len 0 (default), src_len, tos
            "fe 04 00 01",           // table main (254), protocol static (4), scope universe, type unicast
            "00000000",              // rtm_flags
            "0800 0f00 fe000000",    // RTA_TABLE 254
            "0800 0500 0a000001",    // RTA_GATEWAY 10.0.0.1
            "0800 0400 03000000",    // RTA_OIF 3
            "0800 0600 64000000");   // RTA_PRIORITY 100

        Route? route = RouteMessages.Parse(new NetlinkMessage(24, 0, 1, 0, payload));

        Assert.NotNull(route);
        Assert.True(route.IsDefault);
        Assert.Null(route.Destination);
        Assert.Equal(IPAddress.Parse("10.0.0.1"), route.Gateway);
        Assert.Equal(3, route.OutputIndex);
        Assert.Equal(254u, route.Table);
        Assert.Equal((byte)4, route.Protocol);
        Assert.Equal(100u, route.Priority);
    }

    [Fact]
    public void Route_parse_reads_a_connected_ipv6_route()
    {
        byte[] payload = Bytes.Of(
            "0a 40 00 00",                                   // AF_INET6, dst_len 64
            "fe 02 fd 01",                                   // main, kernel, scope link, unicast
            "00000000",
            "1400 0100 fd000000000000000000000000000000",    // RTA_DST fd00::
            "0800 0400 03000000");                           // RTA_OIF 3

        Route? route = RouteMessages.Parse(new NetlinkMessage(24, 0, 1, 0, payload));

        Assert.Equal(IPAddress.Parse("fd00::"), route!.Destination);
        Assert.Equal(64, route.DestinationPrefixLength);
        Assert.Null(route.Gateway);
        Assert.False(route.IsDefault);
    }

    [Fact]
    public void Route_parse_rejects_a_truncated_rtmsg()
    {
        var e = Assert.Throws<NetlinkProtocolException>(() => RouteMessages.Parse(new NetlinkMessage(24, 0, 1, 0, Bytes.Hex("02000000"))));
        Assert.Contains("less than its 12-byte header", e.Message);
    }
}
