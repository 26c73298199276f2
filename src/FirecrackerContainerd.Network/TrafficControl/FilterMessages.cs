using System.Buffers.Binary;
using System.Collections.Immutable;
using FirecrackerContainerd.Network.Netlink;
using static FirecrackerContainerd.Network.Netlink.NetlinkConstants;
using static FirecrackerContainerd.Network.TrafficControl.TcConstants;

namespace FirecrackerContainerd.Network.TrafficControl;

/// <summary>Builds the u32 match-all + mirred redirect filter and parses <c>RTM_NEWTFILTER</c> answers.</summary>
internal static class FilterMessages
{
    /// <summary>
    /// <c>RTM_NEWTFILTER</c> on <paramref name="sourceIndex"/>'s ingress qdisc: a <c>u32</c> filter for every protocol
    /// whose one key (mask 0, value 0, offset 0) matches every packet, marked terminal, with a <c>mirred</c> action
    /// that steals the packet and sends it out of <paramref name="targetIndex"/>. Priority 0 lets the kernel pick one.
    /// </summary>
    public static NetlinkMessageBuilder AddRedirect(int sourceIndex, int targetIndex, ushort priority = 0)
    {
        // tcm_info: priority in the upper half, the protocol in network byte order in the lower half.
        uint info = ((uint)priority << 16) | BinaryPrimitives.ReverseEndianness(ETH_P_ALL);
        return new NetlinkMessageBuilder(RTM_NEWTFILTER, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .Fixed(new TcMessage(sourceIndex, 0, IngressHandle, info).ToBytes())
            .AttributeString(TCA_KIND, "u32")
            .BeginNested(TCA_OPTIONS)
                .Attribute(TCA_U32_SEL, MatchAllSelector())
                .BeginNested(TCA_U32_ACT)
                    .BeginNested(TCA_ACT_TAB)
                        .AttributeString(TCA_ACT_KIND, "mirred")
                        .BeginNested(TCA_ACT_OPTIONS)
                            .Attribute(TCA_MIRRED_PARMS, MirredParameters(targetIndex))
                        .EndNested()
                    .EndNested()
                .EndNested()
            .EndNested();
    }

    /// <summary><c>RTM_GETTFILTER</c> of the filters on <paramref name="index"/>'s ingress qdisc (a dump).</summary>
    public static NetlinkMessageBuilder DumpIngress(int index) =>
        new NetlinkMessageBuilder(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP).Fixed(new TcMessage(index, 0, IngressHandle, 0).ToBytes());

    /// <summary>The filter an <c>RTM_NEWTFILTER</c> message describes, with the mirred actions of a u32 filter.</summary>
    /// <exception cref="NetlinkProtocolException">The message or one of its nested attributes is malformed.</exception>
    public static TcFilter Parse(NetlinkMessage message)
    {
        if (message.Type != RTM_NEWTFILTER)
        {
            throw new NetlinkProtocolException($"rtnetlink: expected RTM_NEWTFILTER ({RTM_NEWTFILTER}), got message type {message.Type}");
        }

        IReadOnlyList<NetlinkAttribute> attributes = message.Attributes(TcMessageSize);
        TcMessage header = TcMessage.Read(message.Payload.Span);
        string kind = attributes.Find(TCA_KIND)?.AsString()
            ?? throw new NetlinkProtocolException($"rtnetlink: filter {header.Handle:x8} on ifindex {header.Index} has no TCA_KIND");
        var redirects = ImmutableArray.CreateBuilder<MirredAction>();
        if (kind == "u32" && attributes.Find(TCA_OPTIONS)?.AsNested().Find(TCA_U32_ACT) is { } actions)
        {
            foreach (NetlinkAttribute action in actions.AsNested())
            {
                IReadOnlyList<NetlinkAttribute> parts = action.AsNested();
                if (parts.Find(TCA_ACT_KIND)?.AsString() == "mirred"
                    && parts.Find(TCA_ACT_OPTIONS)?.AsNested().Find(TCA_MIRRED_PARMS) is { } parameters)
                {
                    redirects.Add(ParseMirred(parameters));
                }
            }
        }

        return new TcFilter(header.Index, kind, (ushort)(header.Info >> 16), (ushort)header.Info, header.Handle, redirects.ToImmutable());
    }

    // struct tc_u32_sel (flags, offshift, nkeys, pad, offmask, off, offoff, hoff, hmask) and one struct
    // tc_u32_key (mask, val, off, offmask) of zeros: a key that every packet matches.
    private static byte[] MatchAllSelector()
    {
        byte[] bytes = new byte[U32SelectorSize + U32KeySize];
        bytes[0] = TC_U32_TERMINAL;
        bytes[2] = 1;
        return bytes;
    }

    // struct tc_mirred: tc_gen (index 0: a new action; capab 0; action; refcnt 0; bindcnt 0), eaction, ifindex.
    private static byte[] MirredParameters(int targetIndex)
    {
        byte[] bytes = new byte[MirredParametersSize];
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), TC_ACT_STOLEN);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(20), TCA_EGRESS_REDIR);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(24), targetIndex);
        return bytes;
    }

    private static MirredAction ParseMirred(NetlinkAttribute parameters)
    {
        ReadOnlySpan<byte> bytes = parameters.Value.Span;
        if (bytes.Length < MirredParametersSize)
        {
            throw new NetlinkProtocolException($"rtnetlink: TCA_MIRRED_PARMS of {bytes.Length} bytes, expected {MirredParametersSize}");
        }

        return new MirredAction(
            BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]),
            BinaryPrimitives.ReadInt32LittleEndian(bytes[20..]),
            BinaryPrimitives.ReadInt32LittleEndian(bytes[24..]));
    }
}
