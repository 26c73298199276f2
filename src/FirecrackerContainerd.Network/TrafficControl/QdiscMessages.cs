using FirecrackerContainerd.Network.Netlink;
using static FirecrackerContainerd.Network.Netlink.NetlinkConstants;
using static FirecrackerContainerd.Network.TrafficControl.TcConstants;

namespace FirecrackerContainerd.Network.TrafficControl;

/// <summary>Builds the ingress qdisc requests and parses <c>RTM_NEWQDISC</c> answers.</summary>
internal static class QdiscMessages
{
    /// <summary><c>RTM_NEWQDISC</c>: an <c>ingress</c> qdisc at parent <c>ffff:fff1</c> with handle <c>ffff:</c>, failing if one exists.</summary>
    public static NetlinkMessageBuilder AddIngress(int index) =>
        new NetlinkMessageBuilder(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .Fixed(new TcMessage(index, IngressHandle, TC_H_INGRESS, 0).ToBytes())
            .AttributeString(TCA_KIND, "ingress");

    /// <summary>
    /// <c>RTM_DELQDISC</c> of the ingress qdisc; the kind is named so that the kernel refuses to delete a different
    /// qdisc (a <c>clsact</c>) at the same parent.
    /// </summary>
    public static NetlinkMessageBuilder DeleteIngress(int index) =>
        new NetlinkMessageBuilder(RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK)
            .Fixed(new TcMessage(index, IngressHandle, TC_H_INGRESS, 0).ToBytes())
            .AttributeString(TCA_KIND, "ingress");

    /// <summary><c>RTM_GETQDISC</c> of the qdiscs of <paramref name="index"/> (a dump; older kernels answer for every link).</summary>
    public static NetlinkMessageBuilder Dump(int index) =>
        new NetlinkMessageBuilder(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP).Fixed(new TcMessage(index, 0, 0, 0).ToBytes());

    /// <summary>The qdisc an <c>RTM_NEWQDISC</c> message describes.</summary>
    /// <exception cref="NetlinkProtocolException">The message is cut short or has no kind.</exception>
    public static Qdisc Parse(NetlinkMessage message)
    {
        if (message.Type != RTM_NEWQDISC)
        {
            throw new NetlinkProtocolException($"rtnetlink: expected RTM_NEWQDISC ({RTM_NEWQDISC}), got message type {message.Type}");
        }

        IReadOnlyList<NetlinkAttribute> attributes = message.Attributes(TcMessageSize);
        TcMessage header = TcMessage.Read(message.Payload.Span);
        string kind = attributes.Find(TCA_KIND)?.AsString()
            ?? throw new NetlinkProtocolException($"rtnetlink: qdisc {header.Handle:x8} on ifindex {header.Index} has no TCA_KIND");
        return new Qdisc(header.Index, kind, header.Handle, header.Parent);
    }
}
