using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Runtime.VmControl;

namespace FirecrackerContainerd.Runtime.Tests.VmControl;

/// <summary>Reading what the VM takes out of a CNI result shaped as bridge, host-local and tc-redirect-tap leave it.</summary>
public sealed class CniVmInterfaceTests
{
    private const string Netns = "/var/run/netns/vm1";

    private static CniResult Result(string vmMac = "AA:00:00:00:00:03", string ips = """{"address":"10.77.3.5/24","gateway":"10.77.3.1","interface":2},{"address":"10.77.3.5/24","gateway":"10.77.3.1","interface":4}""",
        string dns = """{"nameservers":["10.77.3.1","1.1.1.1"]}""", string tapSandbox = Netns, string vmSandbox = "vm1", string routes = "[]") =>
        CniResultJson.Parse($$"""
            {"cniVersion":"1.0.0",
             "interfaces":[{"name":"fcbr0","mac":"aa:00:00:00:00:01"},{"name":"veth1","mac":"aa:00:00:00:00:02"},{"name":"veth0","mac":"{{vmMac}}","sandbox":"{{Netns}}"},
                           {"name":"tap0","mac":"bb:00:00:00:00:04","sandbox":"{{tapSandbox}}"},{"name":"tap0","mac":"{{vmMac}}","sandbox":"{{vmSandbox}}"}],
             "ips":[{{ips}}], "routes":{{routes}}, "dns":{{dns}}}
            """);

    [Fact]
    public void The_VM_gets_the_tap_the_pseudo_interfaces_MAC_its_address_gateway_and_nameservers()
    {
        CniVmInterface vm = CniVmInterface.From(Result(), "vm1", Netns);

        Assert.Equal(("tap0", "aa:00:00:00:00:03", "10.77.3.5/24", "10.77.3.1"), (vm.TapName, vm.Mac, vm.Address.ToString(), vm.Gateway?.ToString()));
        Assert.Equal<string>(["10.77.3.1", "1.1.1.1"], vm.Nameservers);
        Assert.Equal("fc.net=aa:00:00:00:00:03,10.77.3.5/24,10.77.3.1 fc.dns=10.77.3.1,1.1.1.1", vm.KernelArgs);
    }

    [Fact]
    public void Without_a_gateway_on_the_address_the_default_routes_is_taken_and_without_either_there_is_none()
    {
        const string ip = """{"address":"10.77.3.5/32","interface":4}""";
        CniVmInterface routed = CniVmInterface.From(Result(ips: ip, dns: "{}", routes: """[{"dst":"0.0.0.0/0","gw":"10.77.3.1"}]"""), "vm1", Netns);
        CniVmInterface bare = CniVmInterface.From(Result(ips: ip, dns: "{}"), "vm1", Netns);

        Assert.Equal("fc.net=aa:00:00:00:00:03,10.77.3.5/32,10.77.3.1", routed.KernelArgs);
        Assert.Equal("fc.net=aa:00:00:00:00:03,10.77.3.5/32,", bare.KernelArgs);
    }

    [Fact]
    public void At_most_three_nameservers_reach_the_guest()
    {
        CniVmInterface vm = CniVmInterface.From(Result(dns: """{"nameservers":["10.0.0.1","10.0.0.2","10.0.0.3","10.0.0.4"]}"""), "vm1", Netns);

        Assert.Equal<string>(["10.0.0.1", "10.0.0.2", "10.0.0.3"], vm.Nameservers);
    }

    [Fact]
    public void A_result_without_the_tap_says_the_chain_must_end_with_tc_redirect_tap()
    {
        var e = Assert.Throws<InvalidDataException>(() => CniVmInterface.From(Result(vmSandbox: "other-vm"), "vm1", Netns));

        Assert.Contains("the result names no tap for vm \"vm1\"", e.Message, StringComparison.Ordinal);
        Assert.Contains("must end with tc-redirect-tap", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("AA:00:00:00:00", "no unicast MAC")]
    [InlineData("AB:00:00:00:00:03", "no unicast MAC")]
    public void A_MAC_the_guest_cannot_take_is_refused(string mac, string expected)
    {
        Assert.Contains(expected, Assert.Throws<InvalidDataException>(() => CniVmInterface.From(Result(vmMac: mac), "vm1", Netns)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_tap_must_be_in_the_VMs_namespace_and_the_VM_needs_exactly_one_IPv4_address()
    {
        Assert.Contains("not in the vm's network namespace", Assert.Throws<InvalidDataException>(() =>
            CniVmInterface.From(Result(tapSandbox: "/var/run/netns/other"), "vm1", Netns)).Message, StringComparison.Ordinal);
        Assert.Contains("0 IPv4 addresses", Assert.Throws<InvalidDataException>(() =>
            CniVmInterface.From(Result(ips: """{"address":"10.77.3.5/24","interface":2}"""), "vm1", Netns)).Message, StringComparison.Ordinal);
        Assert.Contains("2 IPv4 addresses", Assert.Throws<InvalidDataException>(() =>
            CniVmInterface.From(Result(ips: """{"address":"10.77.3.5/24","interface":4},{"address":"10.77.4.5/24","interface":4}"""), "vm1", Netns)).Message, StringComparison.Ordinal);
    }
}
