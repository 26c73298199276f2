using System.Collections.Immutable;

namespace FirecrackerContainerd.Network.TrafficControl;

/// <summary>A classifier on a link's ingress qdisc, with the mirred actions it carries.</summary>
/// <param name="Index">The link's index (<c>tcm_ifindex</c>).</param>
/// <param name="Kind">The classifier kind (<c>TCA_KIND</c>, e.g. <c>u32</c>).</param>
/// <param name="Priority">The priority (upper 16 bits of <c>tcm_info</c>).</param>
/// <param name="Protocol">The protocol in network byte order as the kernel stores it (lower 16 bits of <c>tcm_info</c>; 0x0300 is <c>ETH_P_ALL</c>).</param>
/// <param name="Handle">The filter's handle (<c>tcm_handle</c>).</param>
/// <param name="Redirects">The mirred actions of a u32 filter, in order.</param>
public sealed record TcFilter(int Index, string Kind, ushort Priority, ushort Protocol, uint Handle, ImmutableArray<MirredAction> Redirects);

/// <summary>A <c>mirred</c> action (<c>struct tc_mirred</c>).</summary>
/// <param name="Action">The verdict after the action (<c>TC_ACT_STOLEN</c> is 4).</param>
/// <param name="MirredKind">What it does (<c>TCA_EGRESS_REDIR</c> is 1).</param>
/// <param name="TargetIndex">The device it sends to.</param>
public sealed record MirredAction(int Action, int MirredKind, int TargetIndex)
{
    /// <summary>Whether this is the redirect the tap redirect installs: egress redirect, packet stolen.</summary>
    public bool IsEgressRedirect => MirredKind == TcConstants.TCA_EGRESS_REDIR && Action == TcConstants.TC_ACT_STOLEN;
}
