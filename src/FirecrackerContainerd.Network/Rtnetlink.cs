using System.Collections.Immutable;
using FirecrackerContainerd.Native;
using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.TrafficControl;

namespace FirecrackerContainerd.Network;

/// <summary>
/// The kernel's routing netlink, from C#: links, addresses and routes, and the ingress qdiscs and u32 mirred filters
/// of a tap redirect. It works in the network namespace of the thread that opened it (see
/// <see cref="Namespaces.NetworkNamespace"/>). Failures are <see cref="NetlinkException"/>s naming the request and
/// the device.
/// </summary>
public sealed class Rtnetlink : IDisposable
{
    private readonly NetlinkSocket _socket;

    private Rtnetlink(NetlinkSocket socket)
    {
        _socket = socket;
    }

    /// <summary>Opens a route netlink socket in the calling thread's network namespace.</summary>
    public static Rtnetlink Open() => new(NetlinkSocket.OpenRoute());

    /// <summary>Every link.</summary>
    public IReadOnlyList<Link> ListLinks() =>
        _socket.Dump(new NetlinkRequest(LinkMessages.Dump(), "list links", null)).Select(LinkMessages.Parse).ToList();

    /// <summary>The link named <paramref name="name"/>, or null when there is none.</summary>
    public Link? FindLink(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        try
        {
            return LinkMessages.Parse(_socket.Get(new NetlinkRequest(LinkMessages.GetByName(name), "get link", name)));
        }
        catch (NetlinkException e) when (e.Errno == Interop.ENODEV)
        {
            return null;
        }
    }

    /// <summary>The link with index <paramref name="index"/>, or null when there is none.</summary>
    public Link? FindLink(int index)
    {
        try
        {
            return LinkMessages.Parse(_socket.Get(new NetlinkRequest(LinkMessages.GetByIndex(index), "get link", $"ifindex {index}")));
        }
        catch (NetlinkException e) when (e.Errno == Interop.ENODEV)
        {
            return null;
        }
    }

    /// <summary>The link named <paramref name="name"/>.</summary>
    /// <exception cref="NetlinkException">ENODEV when there is none.</exception>
    public Link GetLink(string name) =>
        FindLink(name) ?? throw new NetlinkException(Interop.ENODEV, "get link", name);

    /// <summary>Brings <paramref name="link"/> up or down.</summary>
    public void SetLinkUp(Link link, bool up = true)
    {
        ArgumentNullException.ThrowIfNull(link);
        _socket.Execute(new NetlinkRequest(LinkMessages.SetUp(link.Index, up), up ? "set link up" : "set link down", link.ToString()));
    }

    /// <summary>Sets the MTU of <paramref name="link"/>.</summary>
    public void SetMtu(Link link, int mtu)
    {
        ArgumentNullException.ThrowIfNull(link);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(mtu);
        _socket.Execute(new NetlinkRequest(LinkMessages.SetMtu(link.Index, mtu), $"set mtu {mtu}", link.ToString()));
    }

    /// <summary>Deletes <paramref name="link"/> (for a veth, both ends).</summary>
    public void DeleteLink(Link link)
    {
        ArgumentNullException.ThrowIfNull(link);
        _socket.Execute(new NetlinkRequest(LinkMessages.Delete(link.Index), "delete link", link.ToString()));
    }

    /// <summary>The IPv4 and IPv6 addresses of <paramref name="link"/>.</summary>
    public IReadOnlyList<InterfaceAddress> ListAddresses(Link link)
    {
        ArgumentNullException.ThrowIfNull(link);
        return _socket.Dump(new NetlinkRequest(AddressMessages.Dump(), "list addresses", link.ToString()))
            .Select(AddressMessages.Parse)
            .OfType<InterfaceAddress>()
            .Where(a => a.Index == link.Index)
            .ToList();
    }

    /// <summary>The main table's IPv4 and IPv6 routes that leave through <paramref name="link"/>.</summary>
    public IReadOnlyList<Route> ListRoutes(Link link)
    {
        ArgumentNullException.ThrowIfNull(link);
        return _socket.Dump(new NetlinkRequest(RouteMessages.Dump(), "list routes", link.ToString()))
            .Select(RouteMessages.Parse)
            .OfType<Route>()
            .Where(r => r.OutputIndex == link.Index && r.Table == RtnetlinkConstants.RT_TABLE_MAIN)
            .ToList();
    }

    /// <summary>The qdiscs of <paramref name="link"/>.</summary>
    public IReadOnlyList<Qdisc> ListQdiscs(Link link)
    {
        ArgumentNullException.ThrowIfNull(link);
        return _socket.Dump(new NetlinkRequest(QdiscMessages.Dump(link.Index), "list qdiscs", link.ToString()))
            .Select(QdiscMessages.Parse)
            .Where(q => q.Index == link.Index)
            .ToList();
    }

    /// <summary>Adds an ingress qdisc to <paramref name="link"/>.</summary>
    /// <exception cref="NetlinkException">EEXIST when it already has one.</exception>
    public void AddIngressQdisc(Link link)
    {
        ArgumentNullException.ThrowIfNull(link);
        _socket.Execute(new NetlinkRequest(QdiscMessages.AddIngress(link.Index), "add ingress qdisc", link.ToString()));
    }

    /// <summary>Deletes the ingress qdisc of <paramref name="link"/>, and with it its filters; false when it had none.</summary>
    public bool DeleteIngressQdisc(Link link)
    {
        ArgumentNullException.ThrowIfNull(link);

        // The kernel answers a missing ingress qdisc with ENOENT or EINVAL depending on the link's history; a list
        // first tells the two cases apart without guessing from the errno.
        if (!ListQdiscs(link).Any(q => q.IsIngress))
        {
            return false;
        }

        _socket.Execute(new NetlinkRequest(QdiscMessages.DeleteIngress(link.Index), "delete ingress qdisc", link.ToString()));
        return true;
    }

    /// <summary>Adds a u32 match-all filter to <paramref name="source"/>'s ingress qdisc that redirects every packet out of <paramref name="target"/>.</summary>
    /// <exception cref="NetlinkException">The source has no ingress qdisc, or the kernel refused the filter.</exception>
    public void AddRedirectFilter(Link source, Link target)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        _socket.Execute(new NetlinkRequest(FilterMessages.AddRedirect(source.Index, target.Index), $"add u32 mirred redirect filter to {target}", source.ToString()));
    }

    /// <summary>The filters on <paramref name="link"/>'s ingress qdisc (empty when it has none).</summary>
    public IReadOnlyList<TcFilter> ListIngressFilters(Link link)
    {
        ArgumentNullException.ThrowIfNull(link);
        try
        {
            return _socket.Dump(new NetlinkRequest(FilterMessages.DumpIngress(link.Index), "list ingress filters", link.ToString()))
                .Select(FilterMessages.Parse)
                .Where(f => f.Index == link.Index)
                .ToList();
        }
        catch (NetlinkException e) when (e.Errno is Interop.EINVAL or Libc.ENOENT)
        {
            // No ingress qdisc: nothing to list.
            return ImmutableArray<TcFilter>.Empty;
        }
    }

    /// <summary>Whether <paramref name="source"/>'s ingress qdisc has a u32 filter that redirects to <paramref name="target"/>.</summary>
    public bool HasRedirectFilter(Link source, Link target) =>
        ListIngressFilters(source).Any(f => f.Kind == "u32" && f.Redirects.Any(r => r.IsEgressRedirect && r.TargetIndex == target.Index));

    /// <summary>Closes the socket.</summary>
    public void Dispose() => _socket.Dispose();
}
