namespace FirecrackerContainerd.Network.TrafficControl;

/// <summary>A queueing discipline attached to a link.</summary>
/// <param name="Index">The link's index (<c>tcm_ifindex</c>).</param>
/// <param name="Kind">The qdisc kind (<c>TCA_KIND</c>: <c>ingress</c>, <c>noqueue</c>, <c>fq_codel</c>, ...).</param>
/// <param name="Handle">Its handle (<c>tcm_handle</c>; <c>0xFFFF0000</c> for an ingress qdisc).</param>
/// <param name="Parent">Its parent (<c>tcm_parent</c>; <c>0xFFFFFFF1</c> for an ingress qdisc).</param>
public sealed record Qdisc(int Index, string Kind, uint Handle, uint Parent)
{
    /// <summary>Whether this is the ingress qdisc the redirect uses (kind <c>ingress</c> at parent <c>ffff:fff1</c>).</summary>
    public bool IsIngress => Kind == "ingress" && Parent == TcConstants.TC_H_INGRESS;
}
