using System.Collections.Immutable;
using System.Net;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>What an ADD made (CNI spec section 5, "ADD Success"), in a version-independent shape.</summary>
/// <param name="CniVersion">The spec version the result was written in.</param>
/// <param name="Interfaces">The interfaces the attachment made, host-side ones included.</param>
/// <param name="Ips">The IP configurations, each naming its interface by index.</param>
/// <param name="Routes">The routes made.</param>
/// <param name="Dns">The DNS configuration.</param>
public sealed record CniResult(
    string CniVersion,
    ImmutableArray<CniInterface> Interfaces,
    ImmutableArray<CniIpConfig> Ips,
    ImmutableArray<CniRoute> Routes,
    CniDns Dns)
{
    /// <summary>The IP configurations of the interface named <paramref name="name"/> in <paramref name="sandbox"/>.</summary>
    public IEnumerable<CniIpConfig> IpsOf(string name, string? sandbox) =>
        Ips.Where(ip => ip.Interface is int i && i < Interfaces.Length && Interfaces[i].Name == name && Interfaces[i].Sandbox == sandbox);

    /// <summary>
    /// The VM's pseudo-interface and its tap as tc-redirect-tap appends them, found as upstream's <c>VMTapPair</c>
    /// finds them: the one interface whose sandbox is <paramref name="containerId"/> (the VM id), and the one other
    /// interface of the same name (the tap, whose sandbox is the network namespace); null when either is absent.
    /// </summary>
    /// <exception cref="CniFormatException">More than one interface claims to be the VM's, or the tap.</exception>
    public (CniInterface Vm, CniInterface Tap)? FindVmTapPair(string containerId)
    {
        List<CniInterface> vm = Interfaces.Where(i => i.Sandbox == containerId).ToList();
        if (vm.Count > 1)
        {
            throw new CniFormatException($"expected at most 1 interface in sandbox \"{containerId}\" in the result, found {vm.Count}");
        }

        if (vm.Count == 0)
        {
            return null;
        }

        List<CniInterface> taps = Interfaces.Where(i => i.Sandbox != containerId && i.Name == vm[0].Name).ToList();
        if (taps.Count > 1)
        {
            throw new CniFormatException($"expected at most 1 interface named \"{vm[0].Name}\" in the result, found {taps.Count}");
        }

        return taps.Count == 0 ? null : (vm[0], taps[0]);
    }
}

/// <summary>One interface of a result.</summary>
/// <param name="Name">The interface name.</param>
/// <param name="Mac">Its hardware address, or null.</param>
/// <param name="Sandbox">Where it lives: a network namespace path, a VM id, or null for the host.</param>
public sealed record CniInterface(string Name, string? Mac = null, string? Sandbox = null);

/// <summary>One IP configuration of a result.</summary>
/// <param name="Address">The address with its prefix length.</param>
/// <param name="Gateway">The subnet's gateway, or null.</param>
/// <param name="Interface">The index into the result's interfaces, or null.</param>
public sealed record CniIpConfig(CidrAddress Address, IPAddress? Gateway = null, int? Interface = null);

/// <summary>One route of a result.</summary>
/// <param name="Destination">The destination with its prefix length.</param>
/// <param name="Gateway">The next hop, or null.</param>
public sealed record CniRoute(CidrAddress Destination, IPAddress? Gateway = null);

/// <summary>The DNS configuration of a result.</summary>
/// <param name="Nameservers">The name servers, in priority order.</param>
/// <param name="Domain">The local domain, or null.</param>
/// <param name="Search">The search domains.</param>
/// <param name="Options">The resolver options.</param>
public sealed record CniDns(ImmutableArray<string> Nameservers, string? Domain, ImmutableArray<string> Search, ImmutableArray<string> Options)
{
    /// <summary>No DNS configuration.</summary>
    public static CniDns Empty { get; } = new([], null, [], []);
}
