using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.Network.Namespaces;
using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.Tap;
using FirecrackerContainerd.Network.Tests.Support;

namespace FirecrackerContainerd.Network.Tests.Tap;

// A pod namespace with a veth whose other end is in a host stand-in namespace, a tap made by the library in the pod,
// and real frames through both.
[Trait("Category", "Network")]
public class TapRedirectTests
{
    private static readonly TimeSpan FrameTimeout = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Create_makes_a_persistent_tap_with_the_links_mtu_and_owner_up_and_redirected_both_ways()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync(mtu: 1400);

        TapRedirection made = await TapRedirect.CreateAsync(net.Pod.Path, PodNetwork.PodEnd, new TapOptions("tap0", OwnerUid: 1234, OwnerGid: 5678));

        Assert.Equal("tap0", made.Tap.Name);
        Assert.Equal("tun", made.Tap.Kind);
        Assert.Equal(1400, made.Tap.Mtu);
        Assert.True(made.Tap.IsUp);
        Assert.Equal("eth0", made.Link.Name);
        string details = await net.Pod.IpAsync("-d", "link", "show", "tap0");
        Assert.Contains("tun type tap pi off vnet_hdr on persist on user 1234 group 5678", details);
        Assert.Empty(await TapRedirect.CheckAsync(net.Pod.Path, "eth0", "tap0"));

        // The kernel's own tool agrees: an ingress qdisc on each and a mirred redirect to the other.
        Assert.Contains("qdisc ingress ffff: parent ffff:fff1", await RtnetlinkTests.Tc(net, "qdisc", "show", "dev", "eth0"));
        Assert.Contains("qdisc ingress ffff: parent ffff:fff1", await RtnetlinkTests.Tc(net, "qdisc", "show", "dev", "tap0"));
        Assert.Contains("Egress Redirect to device tap0) stolen", await RtnetlinkTests.Tc(net, "filter", "show", "dev", "eth0", "ingress"));
        Assert.Contains("Egress Redirect to device eth0) stolen", await RtnetlinkTests.Tc(net, "filter", "show", "dev", "tap0", "ingress"));
    }

    [Fact]
    public async Task Create_without_a_name_lets_the_kernel_name_the_tap()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        TapRedirection made = await TapRedirect.CreateAsync(net.Pod.Path, PodNetwork.PodEnd, new TapOptions());
        Assert.Equal("tap0", made.Tap.Name);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Frames_cross_the_redirect_both_ways_whatever_header_the_vmm_attaches_with(bool virtioNetHeader)
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        await TapRedirect.CreateAsync(net.Pod.Path, PodNetwork.PodEnd, new TapOptions("tap0"));

        // The VMM's side: attached to the tap by name. A virtio-net header (10 bytes, all zero: no offloads) leads
        // every frame when the attacher asked for one.
        int header = virtioNetHeader ? 10 : 0;
        int tap = await NetworkNamespace.RunAsync(net.Pod.Path, () => Frames.AttachTap("tap0", virtioNetHeader));
        int hostIndex = int.Parse((await net.Host.IpAsync("-o", "link", "show", net.HostEnd)).Split(':')[0], System.Globalization.CultureInfo.InvariantCulture);
        int host = await NetworkNamespace.RunAsync(net.Host.Path, () => Frames.OpenPacketSocket(hostIndex));
        try
        {
            Frames.Send(tap, [.. new byte[header], .. Frames.Build("guest-to-host")]);
            Assert.True(Frames.WaitFor(host, "guest-to-host", FrameTimeout), "a frame written into the tap did not leave through the veth");

            Frames.Send(host, Frames.Build("host-to-guest"));
            Assert.True(Frames.WaitFor(tap, "host-to-guest", FrameTimeout, skip: header), "a frame arriving on the veth did not reach the tap");
        }
        finally
        {
            Frames.Close(tap);
            Frames.Close(host);
        }
    }

    [Fact]
    public async Task Without_the_redirect_no_frame_crosses()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        await NetworkNamespace.RunAsync(net.Pod.Path, () =>
        {
            using Rtnetlink r = Rtnetlink.Open();
            return TapDevice.Create(r, new TapOptions("tap0"));
        });
        int tap = await NetworkNamespace.RunAsync(net.Pod.Path, () => Frames.AttachTap("tap0", virtioNetHeader: false));
        int hostIndex = int.Parse((await net.Host.IpAsync("-o", "link", "show", net.HostEnd)).Split(':')[0], System.Globalization.CultureInfo.InvariantCulture);
        int host = await NetworkNamespace.RunAsync(net.Host.Path, () => Frames.OpenPacketSocket(hostIndex));
        try
        {
            Frames.Send(tap, Frames.Build("nowhere"));
            Assert.False(Frames.WaitFor(host, "nowhere", TimeSpan.FromSeconds(1)));
        }
        finally
        {
            Frames.Close(tap);
            Frames.Close(host);
        }
    }

    [Fact]
    public async Task Remove_leaves_no_tap_qdisc_or_filter()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        await TapRedirect.CreateAsync(net.Pod.Path, PodNetwork.PodEnd, new TapOptions("tap0"));

        await TapRedirect.RemoveAsync(net.Pod.Path, "eth0", "tap0");

        Assert.DoesNotContain("tap0", await net.Pod.IpAsync("link", "show"));
        Assert.DoesNotContain("ingress", await RtnetlinkTests.Tc(net, "qdisc", "show", "dev", "eth0"));
        Assert.Equal(string.Empty, (await RtnetlinkTests.Tc(net, "filter", "show", "dev", "eth0", "ingress")).Trim());
        await TapRedirect.RemoveAsync(net.Pod.Path, "eth0", "tap0"); // again: nothing left to remove
    }

    [Fact]
    public async Task RemoveAsync_of_a_namespace_already_gone_is_nothing_to_do()
    {
        TestNamespace ns = await TestNamespace.CreateAsync("gone");
        string path = ns.Path;
        await ns.DisposeAsync();

        await TapRedirect.RemoveAsync(path, "eth0", "tap0");
    }

    [Fact]
    public async Task Create_on_a_link_that_already_has_an_ingress_qdisc_fails_and_leaves_no_tap()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        await RtnetlinkTests.Tc(net, "qdisc", "add", "dev", "eth0", "ingress");

        var e = await Assert.ThrowsAsync<NetlinkException>(() => TapRedirect.CreateAsync(net.Pod.Path, PodNetwork.PodEnd, new TapOptions("tap0")));

        Assert.Equal(17, e.Errno);
        Assert.Contains("add ingress qdisc on eth0", e.Message);
        Assert.DoesNotContain("tap0", await net.Pod.IpAsync("link", "show"));
        Assert.Contains("ingress", await RtnetlinkTests.Tc(net, "qdisc", "show", "dev", "eth0")); // not ours: kept
    }

    [Fact]
    public async Task Check_names_what_is_missing()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        await TapRedirect.CreateAsync(net.Pod.Path, PodNetwork.PodEnd, new TapOptions("tap0"));
        await RtnetlinkTests.Tc(net, "filter", "del", "dev", "tap0", "ingress");
        await RtnetlinkTests.Tc(net, "qdisc", "del", "dev", "eth0", "ingress");

        IReadOnlyList<string> problems = await TapRedirect.CheckAsync(net.Pod.Path, "eth0", "tap0");

        Assert.Equal(2, problems.Count);
        Assert.Matches(@"^eth0 \(ifindex \d+\) has no ingress qdisc$", problems[0]);
        Assert.Matches(@"^tap0 \(ifindex \d+\) has no u32 filter redirecting to eth0 \(ifindex \d+\)$", problems[1]);
        Assert.Equal(["tap nope0 does not exist"], await TapRedirect.CheckAsync(net.Pod.Path, "eth0", "nope0"));
    }

    [Fact]
    public async Task Create_with_the_name_of_an_existing_tap_fails_and_keeps_that_tap()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync();
        await net.Pod.IpAsync("tuntap", "add", "dev", "tap0", "mode", "tap");

        var e = await Assert.ThrowsAsync<IOException>(() => TapRedirect.CreateAsync(net.Pod.Path, PodNetwork.PodEnd, new TapOptions("tap0")));

        Assert.Equal("create tap tap0: TUNSETIFF: Device or resource busy (a device named tap0 exists)", e.Message);
        Assert.Contains("tap0", await net.Pod.IpAsync("link", "show"));
        Assert.DoesNotContain("ingress", await RtnetlinkTests.Tc(net, "qdisc", "show", "dev", "eth0"));
    }

    [Theory]
    [InlineData("", "is empty")]
    [InlineData("a123456789abcdef", "is longer than 15 bytes")]
    [InlineData("..", "is . or ..")]
    [InlineData("tap/0", "contains '/'")]
    [InlineData("tap 0", "contains '/'")]
    public void Tap_names_are_checked_as_the_kernel_checks_them(string name, string problem)
    {
        var e = Assert.Throws<ArgumentException>(() => TapDevice.ValidateName(name));
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void The_tunsetiff_request_holds_the_name_then_the_flags()
    {
        byte[] ifreq = TapDevice.BuildIfreq("tap0", (short)(TapDevice.IFF_TAP | TapDevice.IFF_NO_PI | TapDevice.IFF_VNET_HDR));
        Assert.Equal(Bytes.Show(Bytes.Of(
            "74617030 00000000 00000000 00000000", // ifr_name "tap0", NUL-padded to IFNAMSIZ (16)
            "0250",                                // ifr_flags IFF_TAP | IFF_NO_PI | IFF_VNET_HDR (0x5002)
            "0000 00000000 00000000 00000000 00000000 00000000")), // the rest of the union
            Bytes.Show(ifreq));
        Assert.Equal(Bytes.Hex("74617025 64000000"), TapDevice.BuildIfreq(null, 0)[..8]); // "tap%d": the kernel's template
    }
}
