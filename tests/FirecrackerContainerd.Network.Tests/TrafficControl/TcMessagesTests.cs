using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.Tests.Support;
using FirecrackerContainerd.Network.TrafficControl;

namespace FirecrackerContainerd.Network.Tests.TrafficControl;

// struct tcmsg from linux/rtnetlink.h; TC_H_INGRESS from linux/pkt_sched.h; struct tc_u32_sel, struct tc_u32_key,
// TCA_U32_*, TCA_ACT_* and tc_gen from linux/pkt_cls.h; struct tc_mirred and TCA_MIRRED_* from
// linux/tc_act/tc_mirred.h.
public class TcMessagesTests
{
    [Fact]
    public void AddIngress_is_an_exclusive_newqdisc_of_kind_ingress_at_ffff_fff1()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "30000000",            // nlmsg_len 48
            "2400",                // nlmsg_type RTM_NEWQDISC (36)
            "0506",                // NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE (0x605)
            "01000000 00000000",   // seq 1, pid 0
            "00 00 0000",          // tcm_family AF_UNSPEC, pads
            "07000000",            // tcm_ifindex 7
            "0000ffff",            // tcm_handle ffff: (0xFFFF0000)
            "f1ffffff",            // tcm_parent TC_H_INGRESS (0xFFFFFFF1)
            "00000000",            // tcm_info
            "0c00 0100",           // nla_len 12, TCA_KIND (1)
            "696e6772 65737300")), // "ingress\0"
            Bytes.Show(QdiscMessages.AddIngress(7).Build(1)));
    }

    [Fact]
    public void DeleteIngress_names_the_ingress_kind_so_a_clsact_is_never_deleted()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "30000000 2500 0500 02000000 00000000", // len 48, RTM_DELQDISC (37), REQUEST|ACK, seq 2
            "00 00 0000 07000000 0000ffff f1ffffff 00000000", // ifindex 7, handle ffff:, parent ffff:fff1
            "0c00 0100 696e6772 65737300")),        // TCA_KIND "ingress\0"
            Bytes.Show(QdiscMessages.DeleteIngress(7).Build(2)));
    }

    [Fact]
    public void Qdisc_dump_names_the_link()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "24000000 2600 0103 03000000 00000000", // len 36, RTM_GETQDISC (38), REQUEST|DUMP, seq 3
            "00 00 0000 07000000 00000000 00000000 00000000")), // tcmsg for ifindex 7
            Bytes.Show(QdiscMessages.Dump(7).Build(3)));
    }

    [Fact]
    public void AddRedirect_is_a_u32_match_all_filter_with_a_mirred_egress_redirect()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "8c000000",            // nlmsg_len 140
            "2c00",                // nlmsg_type RTM_NEWTFILTER (44)
            "0506",                // NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
            "01000000 00000000",   // seq 1, pid 0
            "00 00 0000",          // tcm_family AF_UNSPEC, pads
            "03000000",            // tcm_ifindex 3: the source
            "00000000",            // tcm_handle 0: the kernel picks one
            "0000ffff",            // tcm_parent ffff: (the ingress qdisc)
            "0003 0000",           // tcm_info: protocol htons(ETH_P_ALL) below, priority 0 (the kernel picks) above
            "0800 0100 75333200",  // TCA_KIND "u32\0"
            "6000 0200",           // TCA_OPTIONS, nla_len 96
            "2400 0500",           //   TCA_U32_SEL, nla_len 36
            "01",                  //     tc_u32_sel.flags TC_U32_TERMINAL
            "00",                  //     offshift
            "01",                  //     nkeys 1
            "00",                  //     (padding)
            "0000",                //     offmask
            "0000",                //     off
            "0000",                //     offoff
            "0000",                //     hoff
            "00000000",            //     hmask
            "00000000",            //     keys[0].mask 0: every packet matches
            "00000000",            //     keys[0].val
            "00000000",            //     keys[0].off
            "00000000",            //     keys[0].offmask
            "3800 0700",           //   TCA_U32_ACT, nla_len 56
            "3400 0100",           //     action 1 (TCA_ACT_TAB), nla_len 52
            "0b00 0100",           //       TCA_ACT_KIND, nla_len 11
            "6d697272 656400 00",  //       "mirred\0", 1 byte of padding
            "2400 0200",           //       TCA_ACT_OPTIONS, nla_len 36
            "2000 0200",           //         TCA_MIRRED_PARMS, nla_len 32
            "00000000",            //           tc_gen.index 0
            "00000000",            //           tc_gen.capab
            "04000000",            //           tc_gen.action TC_ACT_STOLEN (4)
            "00000000",            //           tc_gen.refcnt
            "00000000",            //           tc_gen.bindcnt
            "01000000",            //           eaction TCA_EGRESS_REDIR (1)
            "09000000")),          //           ifindex 9: the target
            Bytes.Show(FilterMessages.AddRedirect(3, 9).Build(1)));
    }

    [Fact]
    public void AddRedirect_puts_a_given_priority_in_the_upper_half_of_tcm_info()
    {
        byte[] message = FilterMessages.AddRedirect(3, 9, priority: 0x0102).Build(1);
        Assert.Equal(Bytes.Hex("0003 0201"), message[32..36]); // protocol 0x0300 (as stored), priority 0x0102
    }

    [Fact]
    public void Filter_dump_names_the_link_and_the_ingress_parent()
    {
        Assert.Equal(Bytes.Show(Bytes.Of(
            "24000000 2e00 0103 05000000 00000000", // len 36, RTM_GETTFILTER (46), REQUEST|DUMP, seq 5
            "00 00 0000 03000000 00000000 0000ffff 00000000")), // ifindex 3, parent ffff:
            Bytes.Show(FilterMessages.DumpIngress(3).Build(5)));
    }

    [Fact]
    public void Filter_parse_reads_the_mirred_redirect_of_a_u32_filter()
    {
        // What the kernel answers for the filter above: the kind, then options whose action list holds the mirred
        // action's kind and parameters (a dump also carries statistics, skipped here by type).
        byte[] payload = Bytes.Of(
            "00 00 0000 03000000 00080080 0000ffff 0003 00c0", // ifindex 3, handle 800::800, parent ffff:, ETH_P_ALL, prio 0xc000
            "0800 0100 75333200",                               // TCA_KIND "u32"
            "4400 0280",                                        // TCA_OPTIONS | NLA_F_NESTED, len 68
            "4000 0780",                                        //   TCA_U32_ACT | NESTED, len 64
            "3c00 0180",                                        //     action 1 | NESTED, len 60
            "0b00 0100 6d697272 656400 00",                     //       TCA_ACT_KIND "mirred"
            "0800 0400 00000000",                               //       TCA_ACT_STATS (skipped)
            "2400 0280",                                        //       TCA_ACT_OPTIONS | NESTED, len 36
            "2000 0200 01000000 00000000 04000000 01000000 01000000 01000000 09000000"); // index 1, stolen, egress redirect to 9

        TcFilter filter = FilterMessages.Parse(new NetlinkMessage(44, 0, 1, 0, payload));

        Assert.Equal("u32", filter.Kind);
        Assert.Equal(3, filter.Index);
        Assert.Equal((ushort)0xc000, filter.Priority);
        Assert.Equal((ushort)0x0300, filter.Protocol);
        Assert.Equal(new MirredAction(4, 1, 9), Assert.Single(filter.Redirects));
        Assert.True(filter.Redirects[0].IsEgressRedirect);
    }

    [Fact]
    public void Filter_parse_of_a_u32_hash_table_entry_has_no_redirects()
    {
        byte[] payload = Bytes.Of("00 00 0000 03000000 00008000 0000ffff 0003 00c0", "0800 0100 75333200");
        Assert.Empty(FilterMessages.Parse(new NetlinkMessage(44, 0, 1, 0, payload)).Redirects);
    }

    [Fact]
    public void Filter_parse_rejects_truncated_mirred_parameters()
    {
        byte[] payload = Bytes.Of(
            "00 00 0000 03000000 00000000 0000ffff 00000000",
            "0800 0100 75333200",
            "2c00 0200",                           // TCA_OPTIONS, len 44
            "2800 0700",                           //   TCA_U32_ACT, len 40
            "2400 0100",                           //     action 1, len 36
            "0b00 0100 6d697272 656400 00",        //       "mirred"
            "1400 0200",                           //       TCA_ACT_OPTIONS, len 20
            "1000 0200 00000000 00000000 04000000"); //         TCA_MIRRED_PARMS of 12 bytes: cut short

        var e = Assert.Throws<NetlinkProtocolException>(() => FilterMessages.Parse(new NetlinkMessage(44, 0, 1, 0, payload)));
        Assert.Contains("TCA_MIRRED_PARMS of 12 bytes", e.Message);
    }

    [Fact]
    public void Qdisc_parse_recognises_the_ingress_qdisc()
    {
        byte[] payload = Bytes.Of("00 00 0000 07000000 0000ffff f1ffffff 01000000", "0c00 0100 696e6772 65737300");
        Qdisc qdisc = QdiscMessages.Parse(new NetlinkMessage(36, 0, 1, 0, payload));
        Assert.Equal(new Qdisc(7, "ingress", 0xFFFF0000, 0xFFFFFFF1), qdisc);
        Assert.True(qdisc.IsIngress);
    }

    [Fact]
    public void Qdisc_parse_rejects_a_qdisc_without_a_kind()
    {
        byte[] payload = Bytes.Of("00 00 0000 07000000 0000ffff f1ffffff 01000000");
        Assert.Throws<NetlinkProtocolException>(() => QdiscMessages.Parse(new NetlinkMessage(36, 0, 1, 0, payload)));
    }
}
