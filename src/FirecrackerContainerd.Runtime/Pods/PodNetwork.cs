using System.Net;
using System.Net.Sockets;
using FirecrackerContainerd.Network;
using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.Network.Namespaces;
using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.Tap;

namespace FirecrackerContainerd.Runtime.Pods;

/// <summary>
/// A pod's network, carried into its VM (Kata's tcfilter model): CNI (run by containerd's CRI plugin before the
/// sandbox task exists) configured a veth in the pod's network namespace; the shim makes a TAP device beside it and
/// redirects every frame both ways between them with ingress qdiscs and mirred filters; the VMM runs in that
/// namespace with its network device on the TAP and the veth's MAC, and the guest takes the veth's address, routes
/// and DNS. Disposing removes the TAP and the redirect (nothing, if the namespace is gone already).
/// </summary>
internal sealed class PodNetwork : IAsyncDisposable
{
    /// <summary>The TAP device's name in the pod's namespace.</summary>
    public const string TapName = "fc-tap0";

    private int _disposed;

    private PodNetwork(string namespacePath, string linkName, string mac, int mtu, IPAddress address, int prefixLength, IPAddress? gateway)
    {
        NamespacePath = namespacePath;
        LinkName = linkName;
        Mac = mac;
        Mtu = mtu;
        Address = address;
        PrefixLength = prefixLength;
        Gateway = gateway;
    }

    /// <summary>The pod's network namespace file, where the VMM runs.</summary>
    public string NamespacePath { get; }

    /// <summary>The CNI interface (the veth) in that namespace.</summary>
    public string LinkName { get; }

    /// <summary>The veth's MAC, which the guest's interface takes.</summary>
    public string Mac { get; }

    /// <summary>The veth's MTU, which the TAP takes.</summary>
    public int Mtu { get; }

    /// <summary>The pod's IPv4 address.</summary>
    public IPAddress Address { get; }

    /// <summary>The prefix length of <see cref="Address"/>.</summary>
    public int PrefixLength { get; }

    /// <summary>The default gateway, if CNI set one.</summary>
    public IPAddress? Gateway { get; }

    /// <summary>
    /// Finds the pod's interface in <paramref name="namespacePath"/> (the one interface besides loopback with an IPv4
    /// address), reads its MAC, MTU, address and default route, and sets up the TAP and the redirect beside it.
    /// </summary>
    /// <exception cref="PodNetworkException">The namespace is missing, holds no such interface or more than one, or the kernel refused the set-up.</exception>
    public static async Task<PodNetwork> AttachAsync(string namespacePath, CancellationToken cancellationToken)
    {
        (Link link, InterfaceAddress address, IPAddress? gateway) found;
        try
        {
            found = await NetworkNamespace.RunAsync(namespacePath, () => FindPodInterface(namespacePath), cancellationToken).ConfigureAwait(false);
        }
        catch (NetworkNamespaceNotFoundException e)
        {
            throw new PodNetworkException($"the pod's network namespace {namespacePath} does not exist", e);
        }
        catch (NetlinkException e)
        {
            throw new PodNetworkException($"reading the pod's network in {namespacePath}: {e.Message}", e);
        }

        (Link link, InterfaceAddress address, IPAddress? gateway) = found;
        if (link.Mac is not { } mac)
        {
            throw new PodNetworkException($"the pod's interface {link.Name} in {namespacePath} has no MAC address");
        }

        try
        {
            await TapRedirect.CreateAsync(namespacePath, link.Name, new TapOptions(TapName, link.Mtu), cancellationToken).ConfigureAwait(false);
        }
        catch (NetlinkException e)
        {
            throw new PodNetworkException($"redirecting {link.Name} to a TAP device in {namespacePath}: {e.Message}", e);
        }

        return new PodNetwork(namespacePath, link.Name, mac, link.Mtu, address.Address, address.PrefixLength, gateway);
    }

    /// <summary>Removes the TAP device and the redirect; safe to call again, and after the namespace is gone.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await TapRedirect.RemoveAsync(NamespacePath, LinkName, TapName, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static (Link Link, InterfaceAddress Address, IPAddress? Gateway) FindPodInterface(string namespacePath)
    {
        using Rtnetlink rtnetlink = Rtnetlink.Open();
        var candidates = new List<(Link Link, InterfaceAddress Address)>();
        foreach (Link link in rtnetlink.ListLinks())
        {
            if (link.Name == "lo" || link.Name == TapName)
            {
                continue;
            }

            InterfaceAddress? ipv4 = rtnetlink.ListAddresses(link).FirstOrDefault(a => a.Address.AddressFamily == AddressFamily.InterNetwork);
            if (ipv4 is not null)
            {
                candidates.Add((link, ipv4));
            }
        }

        if (candidates.Count != 1)
        {
            throw new PodNetworkException(candidates.Count == 0
                ? $"the pod's network namespace {namespacePath} has no interface with an IPv4 address (did CNI run?)"
                : $"the pod's network namespace {namespacePath} has {candidates.Count} interfaces with IPv4 addresses ({string.Join(", ", candidates.Select(c => c.Link.Name))}); one is supported");
        }

        (Link pod, InterfaceAddress address) = candidates[0];
        IPAddress? gateway = rtnetlink.ListRoutes(pod).FirstOrDefault(r => r.IsDefault && r.Gateway is not null && r.Family == (byte)AddressFamily.InterNetwork)?.Gateway;
        return (pod, address, gateway);
    }
}

/// <summary>The pod's network could not be carried into its VM; the message says which step and why.</summary>
internal sealed class PodNetworkException : Exception
{
    public PodNetworkException(string message)
        : base(message)
    {
    }

    public PodNetworkException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
