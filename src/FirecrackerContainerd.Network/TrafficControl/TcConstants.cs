namespace FirecrackerContainerd.Network.TrafficControl;

/// <summary>Numbers from the kernel's <c>linux/rtnetlink.h</c>, <c>pkt_sched.h</c>, <c>pkt_cls.h</c> and <c>tc_act/tc_mirred.h</c>, under their uapi names.</summary>
internal static class TcConstants
{
    public const ushort RTM_NEWQDISC = 36;
    public const ushort RTM_DELQDISC = 37;
    public const ushort RTM_GETQDISC = 38;
    public const ushort RTM_NEWTFILTER = 44;
    public const ushort RTM_DELTFILTER = 45;
    public const ushort RTM_GETTFILTER = 46;

    /// <summary><c>sizeof(struct tcmsg)</c>: family (u8), pad (u8), pad (u16), ifindex (s32), handle, parent, info (u32 each).</summary>
    public const int TcMessageSize = 20;

    /// <summary><c>TC_H_INGRESS</c>: the parent an ingress qdisc hangs from.</summary>
    public const uint TC_H_INGRESS = 0xFFFFFFF1;

    /// <summary>The ingress qdisc's own handle, <c>ffff:</c>; its filters name it as their parent.</summary>
    public const uint IngressHandle = 0xFFFF0000;

    public const ushort TCA_KIND = 1;
    public const ushort TCA_OPTIONS = 2;

    public const ushort TCA_U32_SEL = 5;
    public const ushort TCA_U32_ACT = 7;

    /// <summary><c>TC_U32_TERMINAL</c>: a match ends the classification (no further keys or links).</summary>
    public const byte TC_U32_TERMINAL = 1;

    /// <summary><c>sizeof(struct tc_u32_sel)</c> without keys.</summary>
    public const int U32SelectorSize = 16;

    /// <summary><c>sizeof(struct tc_u32_key)</c>.</summary>
    public const int U32KeySize = 16;

    /// <summary><c>TCA_ACT_TAB</c>: the first action of a list; the n-th has type n.</summary>
    public const ushort TCA_ACT_TAB = 1;

    public const ushort TCA_ACT_KIND = 1;
    public const ushort TCA_ACT_OPTIONS = 2;

    public const ushort TCA_MIRRED_PARMS = 2;

    /// <summary><c>sizeof(struct tc_mirred)</c>: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex.</summary>
    public const int MirredParametersSize = 28;

    /// <summary><c>TC_ACT_STOLEN</c>: the action consumed the packet; nothing else sees it.</summary>
    public const int TC_ACT_STOLEN = 4;

    /// <summary><c>TCA_EGRESS_REDIR</c>: send the packet out of the target device.</summary>
    public const int TCA_EGRESS_REDIR = 1;

    /// <summary><c>ETH_P_ALL</c>: every protocol.</summary>
    public const ushort ETH_P_ALL = 0x0003;
}
