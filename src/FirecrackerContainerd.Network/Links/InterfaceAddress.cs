using System.Net;

namespace FirecrackerContainerd.Network.Links;

/// <summary>An IP address assigned to an interface.</summary>
/// <param name="Index">The interface index (<c>ifa_index</c>).</param>
/// <param name="Address">The address (<c>IFA_LOCAL</c>, else <c>IFA_ADDRESS</c>).</param>
/// <param name="PrefixLength">The prefix length (<c>ifa_prefixlen</c>).</param>
/// <param name="Scope">The scope (<c>ifa_scope</c>: 0 global, 253 link, 254 host).</param>
/// <param name="Label">The label (<c>IFA_LABEL</c>, IPv4 only), or null.</param>
public sealed record InterfaceAddress(int Index, IPAddress Address, int PrefixLength, byte Scope, string? Label)
{
    /// <summary>The address in CIDR notation, e.g. <c>10.1.0.5/16</c>.</summary>
    public override string ToString() => $"{Address}/{PrefixLength}";
}
