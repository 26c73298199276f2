namespace FirecrackerContainerd.Network.Links;

/// <summary>Numbers from the kernel's <c>linux/rtnetlink.h</c>, <c>if_link.h</c>, <c>if_addr.h</c> and <c>if.h</c>, under their uapi names.</summary>
internal static class RtnetlinkConstants
{
    public const ushort RTM_NEWLINK = 16;
    public const ushort RTM_DELLINK = 17;
    public const ushort RTM_GETLINK = 18;
    public const ushort RTM_NEWADDR = 20;
    public const ushort RTM_GETADDR = 22;
    public const ushort RTM_NEWROUTE = 24;
    public const ushort RTM_GETROUTE = 26;

    public const byte AF_UNSPEC = 0;
    public const byte AF_INET = 2;
    public const byte AF_INET6 = 10;

    public const ushort IFLA_ADDRESS = 1;
    public const ushort IFLA_IFNAME = 3;
    public const ushort IFLA_MTU = 4;
    public const ushort IFLA_LINKINFO = 18;
    public const ushort IFLA_INFO_KIND = 1;

    public const ushort IFA_ADDRESS = 1;
    public const ushort IFA_LOCAL = 2;
    public const ushort IFA_LABEL = 3;

    public const ushort RTA_DST = 1;
    public const ushort RTA_OIF = 4;
    public const ushort RTA_GATEWAY = 5;
    public const ushort RTA_PRIORITY = 6;
    public const ushort RTA_PREFSRC = 7;
    public const ushort RTA_TABLE = 15;

    /// <summary>The main routing table (<c>RT_TABLE_MAIN</c>).</summary>
    public const uint RT_TABLE_MAIN = 254;

    /// <summary><c>IFF_UP</c>: the administrative state.</summary>
    public const uint IFF_UP = 0x1;

    /// <summary><c>IFF_LOWER_UP</c>: the driver signals carrier.</summary>
    public const uint IFF_LOWER_UP = 0x10000;

    /// <summary><c>sizeof(struct ifinfomsg)</c>.</summary>
    public const int IfInfoMessageSize = 16;

    /// <summary><c>sizeof(struct ifaddrmsg)</c>.</summary>
    public const int IfAddrMessageSize = 8;

    /// <summary><c>sizeof(struct rtmsg)</c>.</summary>
    public const int RtMessageSize = 12;
}
