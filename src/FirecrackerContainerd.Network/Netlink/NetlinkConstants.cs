namespace FirecrackerContainerd.Network.Netlink;

/// <summary>Numbers from the kernel's <c>linux/netlink.h</c>, under their uapi names.</summary>
internal static class NetlinkConstants
{
    /// <summary><c>sizeof(struct nlmsghdr)</c>: len (u32), type (u16), flags (u16), seq (u32), pid (u32).</summary>
    public const int MessageHeaderSize = 16;

    /// <summary><c>sizeof(struct nlattr)</c>: len (u16), type (u16).</summary>
    public const int AttributeHeaderSize = 4;

    /// <summary><c>NLMSG_ALIGNTO</c> and <c>NLA_ALIGNTO</c>: messages and attributes start on 4-byte boundaries.</summary>
    public const int Alignment = 4;

    public const ushort NLMSG_NOOP = 1;
    public const ushort NLMSG_ERROR = 2;
    public const ushort NLMSG_DONE = 3;
    public const ushort NLMSG_OVERRUN = 4;

    public const ushort NLM_F_REQUEST = 0x01;
    public const ushort NLM_F_MULTI = 0x02;
    public const ushort NLM_F_ACK = 0x04;
    public const ushort NLM_F_DUMP_INTR = 0x10;

    /// <summary>For GET requests: <c>NLM_F_ROOT | NLM_F_MATCH</c>.</summary>
    public const ushort NLM_F_DUMP = 0x300;

    /// <summary>For NEW requests: fail if the object exists.</summary>
    public const ushort NLM_F_EXCL = 0x200;

    /// <summary>For NEW requests: create the object if it does not exist.</summary>
    public const ushort NLM_F_CREATE = 0x400;

    /// <summary>In an error reply: extended-ack attributes follow the echoed header.</summary>
    public const ushort NLM_F_ACK_TLVS = 0x200;

    /// <summary>Extended ack attribute: the kernel's message text (<c>NLMSGERR_ATTR_MSG</c>).</summary>
    public const ushort NLMSGERR_ATTR_MSG = 1;

    /// <summary>Set in an attribute's type when its value is itself a list of attributes.</summary>
    public const ushort NLA_F_NESTED = 0x8000;

    /// <summary>The bits of an attribute's type that are the type (the two flag bits masked off).</summary>
    public const ushort NLA_TYPE_MASK = 0x3FFF;

    /// <summary>Rounds <paramref name="length"/> up to the next 4-byte boundary (<c>NLMSG_ALIGN</c>, <c>NLA_ALIGN</c>).</summary>
    public static int Align(int length) => (length + Alignment - 1) & ~(Alignment - 1);
}
