using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Runtime.VmControl;
using FirecrackerContainerd.Ttrpc;

namespace FirecrackerContainerd.Runtime.Tests.VmControl;

public sealed class GuestNetworkTests
{
    private static readonly Func<string, bool> OnlyTap0 = name => name == "tap0";

    private static CreateVMRequest Request(params FirecrackerNetworkInterface[] nics)
    {
        var request = new CreateVMRequest { VMID = "vm1" };
        request.NetworkInterfaces.Add(nics);
        return request;
    }

    private static FirecrackerNetworkInterface Static(string mac = "06:00:AC:10:00:02", string tap = "tap0", IPConfiguration? ip = null) =>
        new() { StaticConfig = new StaticNetworkConfiguration { MacAddress = mac, HostDevName = tap, IPConfig = ip } };

    private static IPConfiguration Ip(string primary, string gateway = "", params string[] nameservers)
    {
        var ip = new IPConfiguration { PrimaryAddr = primary, GatewayAddr = gateway };
        ip.Nameservers.Add(nameservers);
        return ip;
    }

    [Fact]
    public void No_interfaces_give_no_devices_and_no_kernel_arguments()
    {
        var (devices, args) = GuestNetwork.FromRequest(Request(), OnlyTap0);
        Assert.Empty(devices);
        Assert.Equal(string.Empty, args);
    }

    [Fact]
    public void A_static_interface_becomes_a_tap_backed_device_and_the_kernel_arguments_the_guest_configures_it_from()
    {
        var (devices, args) = GuestNetwork.FromRequest(
            Request(Static(ip: Ip("172.16.0.2/24", "172.16.0.1", "172.16.0.1", "2001:db8::53"))), OnlyTap0);

        var device = Assert.Single(devices);
        Assert.Equal(("net0", "tap0", "06:00:ac:10:00:02"), (device.IfaceId, device.HostDevName, device.GuestMac));
        Assert.Equal("fc.net=06:00:ac:10:00:02,172.16.0.2/24,172.16.0.1 fc.dns=172.16.0.1,2001:db8::53", args);
    }

    [Fact]
    public void An_interface_without_an_address_is_only_brought_up()
    {
        var (_, args) = GuestNetwork.FromRequest(Request(Static()), OnlyTap0);
        Assert.Equal("fc.net=06:00:ac:10:00:02,,", args);
    }

    [Theory]
    [InlineData("06:00:ac:10:00", "tap0", "172.16.0.2/24", "", "MacAddress")]
    [InlineData("07:00:ac:10:00:02", "tap0", "172.16.0.2/24", "", "unicast")]
    [InlineData("06:00:ac:10:00:02", "tap1", "172.16.0.2/24", "", "not a TAP device")]
    [InlineData("06:00:ac:10:00:02", "../eth0", "172.16.0.2/24", "", "HostDevName")]
    [InlineData("06:00:ac:10:00:02", "tap0", "172.16.0.2", "", "PrimaryAddr")]
    [InlineData("06:00:ac:10:00:02", "tap0", "172.16.0.2/33", "", "PrimaryAddr")]
    [InlineData("06:00:ac:10:00:02", "tap0", "172.16.2/24", "", "PrimaryAddr")]
    [InlineData("06:00:ac:10:00:02", "tap0", "2001:db8::2/64", "", "IPv4")]
    [InlineData("06:00:ac:10:00:02", "tap0", "172.16.0.2/24", "172.16.1.1", "GatewayAddr")]
    [InlineData("06:00:ac:10:00:02", "tap0", "172.16.0.2/24", "172.16.0.2", "GatewayAddr")]
    [InlineData("06:00:ac:10:00:02", "tap0", "172.16.0.2/24 fc.init=/bin/sh", "", "PrimaryAddr")]
    public void A_bad_field_is_InvalidArgument_naming_it(string mac, string tap, string primary, string gateway, string named)
    {
        var e = Assert.Throws<TtrpcException>(() => GuestNetwork.FromRequest(Request(Static(mac, tap, Ip(primary, gateway))), OnlyTap0));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
        Assert.Contains("NetworkInterfaces[0]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_interfaces_may_not_share_a_MAC_or_a_TAP_device_or_both_have_a_default_route()
    {
        Func<string, bool> any = _ => true;
        Assert.Contains("used twice", Assert.Throws<TtrpcException>(() =>
            GuestNetwork.FromRequest(Request(Static(tap: "tap0"), Static(tap: "tap1")), any)).Message, StringComparison.Ordinal);
        Assert.Contains("used twice", Assert.Throws<TtrpcException>(() =>
            GuestNetwork.FromRequest(Request(Static(), Static(mac: "06:00:ac:10:00:03")), any)).Message, StringComparison.Ordinal);
        Assert.Contains("default route", Assert.Throws<TtrpcException>(() => GuestNetwork.FromRequest(Request(
            Static(ip: Ip("172.16.0.2/24", "172.16.0.1")),
            Static(mac: "06:00:ac:10:00:03", tap: "tap1", ip: Ip("172.17.0.2/24", "172.17.0.1"))), any)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nameservers_in_unusual_forms_or_too_many_are_refused()
    {
        Assert.Contains("Nameservers", Assert.Throws<TtrpcException>(() =>
            GuestNetwork.FromRequest(Request(Static(ip: Ip("172.16.0.2/24", "", "10"))), OnlyTap0)).Message, StringComparison.Ordinal);
        Assert.Contains("nameservers", Assert.Throws<TtrpcException>(() =>
            GuestNetwork.FromRequest(Request(Static(ip: Ip("172.16.0.2/24", "", "1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"))), OnlyTap0)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MMDS_and_rate_limiters_are_Unimplemented_and_a_missing_static_config_or_a_CNI_one_beside_it_is_InvalidArgument()
    {
        var cni = new FirecrackerNetworkInterface { CNIConfig = new CNIConfiguration { NetworkName = "fcnet" } };
        var mixed = Assert.Throws<TtrpcException>(() => GuestNetwork.FromRequest(Request(Static(), cni), OnlyTap0));
        Assert.Equal(StatusCode.InvalidArgument, mixed.StatusCode);
        Assert.Contains("NetworkInterfaces[1]: CNIConfig cannot be combined", mixed.Message, StringComparison.Ordinal);
        FirecrackerNetworkInterface mmds = Static();
        mmds.AllowMMDS = true;
        Assert.Equal(StatusCode.Unimplemented, Assert.Throws<TtrpcException>(() => GuestNetwork.FromRequest(Request(mmds), OnlyTap0)).StatusCode);
        FirecrackerNetworkInterface limited = Static();
        limited.InRateLimiter = new FirecrackerRateLimiter();
        Assert.Equal(StatusCode.Unimplemented, Assert.Throws<TtrpcException>(() => GuestNetwork.FromRequest(Request(limited), OnlyTap0)).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, Assert.Throws<TtrpcException>(() =>
            GuestNetwork.FromRequest(Request(new FirecrackerNetworkInterface()), OnlyTap0)).StatusCode);
    }
}
