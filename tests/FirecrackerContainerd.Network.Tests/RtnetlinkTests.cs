using System.Net;
using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.Network.Namespaces;
using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.Tests.Support;
using FirecrackerContainerd.Network.TrafficControl;

namespace FirecrackerContainerd.Network.Tests;

// Against the real kernel, inside namespaces the tests make.
[Trait("Category", "Network")]
public class RtnetlinkTests
{
    [Fact]
    public async Task Links_are_found_by_name_and_index_with_mac_mtu_flags_and_kind()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync(mtu: 1400);
        string mac = (await net.Pod.IpAsync("-o", "link", "show", "eth0")).Split("link/ether ")[1][..17];

        (Link? byName, Link? byIndex, Link? missing, List<string> names) = await InPod(net, r =>
        {
            Link eth0 = r.GetLink("eth0");
            return (eth0, r.FindLink(eth0.Index), r.FindLink("nope0"), r.ListLinks().Select(l => l.Name).ToList());
        });

        Assert.NotNull(byName);
        Assert.Equal(byName, byIndex);
        Assert.Equal(mac, byName.Mac);
        Assert.Equal(1400, byName.Mtu);
        Assert.Equal("veth", byName.Kind);
        Assert.True(byName.IsUp);
        Assert.Null(missing);
        Assert.Equal(["eth0", "lo"], names.Order());
    }

    [Fact]
    public async Task GetLink_of_an_unknown_name_names_the_device_and_the_errno()
    {
        await using TestNamespace ns = await TestNamespace.CreateAsync("ns");
        var e = await Assert.ThrowsAsync<NetlinkException>(() => NetworkNamespace.RunAsync(ns.Path, () =>
        {
            using Rtnetlink r = Rtnetlink.Open();
            return r.GetLink("nope0");
        }));
        Assert.Equal(19, e.Errno);
        Assert.StartsWith("rtnetlink: get link on nope0: No such device (ENODEV)", e.Message);
    }

    [Fact]
    public async Task SetMtu_and_SetLinkUp_change_the_link()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        (Link after, Link down) = await InPod(net, r =>
        {
            Link eth0 = r.GetLink("eth0");
            r.SetMtu(eth0, 1280);
            Link changed = r.GetLink("eth0");
            r.SetLinkUp(eth0, up: false);
            return (changed, r.GetLink("eth0"));
        });

        Assert.Equal(1280, after.Mtu);
        Assert.False(down.IsUp);
        Assert.Contains("mtu 1280", await net.Pod.IpAsync("link", "show", "eth0"));
    }

    [Fact]
    public async Task Addresses_and_routes_of_a_link_give_its_ip_prefix_and_gateway()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        await net.Pod.IpAsync("addr", "add", "10.77.0.2/24", "dev", "eth0");
        await net.Pod.IpAsync("route", "add", "default", "via", "10.77.0.1");

        (IReadOnlyList<InterfaceAddress> addresses, IReadOnlyList<Route> routes) = await InPod(net, r =>
        {
            Link eth0 = r.GetLink("eth0");
            return (r.ListAddresses(eth0), r.ListRoutes(eth0));
        });

        InterfaceAddress v4 = Assert.Single(addresses, a => a.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
        Assert.Equal("10.77.0.2/24", v4.ToString());
        Route defaultRoute = Assert.Single(routes, r => r.IsDefault && r.Family == 2);
        Assert.Equal(IPAddress.Parse("10.77.0.1"), defaultRoute.Gateway);
        Assert.Contains(routes, r => Equals(r.Destination, IPAddress.Parse("10.77.0.0")) && r.DestinationPrefixLength == 24 && r.Gateway is null);
    }

    [Fact]
    public async Task A_second_ingress_qdisc_fails_with_eexist_naming_the_device()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        (NetlinkException? second, bool deleted, bool deletedAgain) = await InPod(net, r =>
        {
            Link eth0 = r.GetLink("eth0");
            r.AddIngressQdisc(eth0);
            NetlinkException? e = Record.Exception(() => r.AddIngressQdisc(eth0)) as NetlinkException;
            return (e, r.DeleteIngressQdisc(eth0), r.DeleteIngressQdisc(eth0));
        });

        Assert.NotNull(second);
        Assert.Equal(17, second.Errno);
        Assert.StartsWith("rtnetlink: add ingress qdisc on eth0 (ifindex ", second.Message);
        Assert.EndsWith("File exists (EEXIST) (Exclusivity flag on, cannot modify)", second.Message); // the kernel's extended ack
        Assert.True(deleted);
        Assert.False(deletedAgain);
        Assert.DoesNotContain("ingress", await Tc(net, "qdisc", "show", "dev", "eth0"));
    }

    [Fact]
    public async Task Filters_are_listed_from_the_ingress_qdisc_and_are_none_without_one()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        (int without, TcFilter redirect, bool has, bool hasReverse) = await InPod(net, r =>
        {
            Link eth0 = r.GetLink("eth0");
            Link lo = r.GetLink("lo");
            int none = r.ListIngressFilters(eth0).Count;
            r.AddIngressQdisc(eth0);
            r.AddRedirectFilter(eth0, lo);
            return (none, r.ListIngressFilters(eth0).Single(f => !f.Redirects.IsEmpty), r.HasRedirectFilter(eth0, lo), r.HasRedirectFilter(lo, eth0));
        });

        Assert.Equal(0, without);
        Assert.Equal("u32", redirect.Kind);
        Assert.Equal((ushort)0x0300, redirect.Protocol);
        Assert.Equal((ushort)49152, redirect.Priority); // priority 0 asked: the kernel's first choice
        Assert.Equal(new MirredAction(4, 1, 1), Assert.Single(redirect.Redirects));
        Assert.True(has);
        Assert.False(hasReverse);
    }

    [Fact]
    public async Task A_redirect_filter_without_an_ingress_qdisc_fails_naming_both_devices()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        var e = await Assert.ThrowsAsync<NetlinkException>(() => InPod(net, r =>
        {
            Link eth0 = r.GetLink("eth0");
            r.AddRedirectFilter(eth0, r.GetLink("lo"));
            return true;
        }));
        Assert.StartsWith("rtnetlink: add u32 mirred redirect filter to lo (ifindex 1) on eth0 (ifindex ", e.Message);
    }

    private static Task<T> InPod<T>(PodNetwork net, Func<Rtnetlink, T> work) =>
        NetworkNamespace.RunAsync(net.Pod.Path, () =>
        {
            using Rtnetlink rtnetlink = Rtnetlink.Open();
            return work(rtnetlink);
        });

    internal static async Task<string> Tc(PodNetwork net, params string[] args)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return (await Tool.RunAsync("tc", ["-n", net.Pod.Name, .. args], "iproute2", timeout.Token)).Stdout;
    }
}
