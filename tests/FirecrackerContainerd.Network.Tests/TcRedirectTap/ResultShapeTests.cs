using System.Text.Json.Nodes;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.TcRedirectTap;

namespace FirecrackerContainerd.Network.Tests.TcRedirectTap;

// Upstream's result shape (awslabs/tc-redirect-tap main.go add()): the tap in the netns, then a pseudo-interface with
// the tap's name, the VM as its sandbox and the veth's MAC, carrying copies of the veth's IPs.
public class ResultShapeTests
{
    private const string Netns = "/var/run/netns/pod";

    private static readonly PluginInvocation Invocation = new("ADD", "vm-1", Netns, "eth0", new TapArguments(null, null, null), "0.4.0", null);

    [Fact]
    public void AppendTap_adds_the_tap_and_the_vm_interface_with_the_veths_ips()
    {
        CniResult previous = CniResultJson.Parse("""
            {"cniVersion":"1.0.0",
             "interfaces":[{"name":"fc-br0","mac":"aa:00:00:00:00:01"},{"name":"veth1","mac":"aa:00:00:00:00:02"},{"name":"eth0","mac":"aa:00:00:00:00:03","sandbox":"/var/run/netns/pod"}],
             "ips":[{"address":"192.168.1.2/24","gateway":"192.168.1.1","interface":2}],
             "routes":[{"dst":"0.0.0.0/0"}],
             "dns":{"nameservers":["1.1.1.1"]}}
            """);
        var veth = new Link(3, "eth0", "aa:00:00:00:00:03", 1500, 1, "veth");
        var tap = new Link(4, "tap0", "bb:00:00:00:00:04", 1500, 1, "tun");

        CniResult result = TcRedirectTapPlugin.AppendTap(previous, Invocation, veth, tap);

        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""
            {"cniVersion":"0.4.0",
             "interfaces":[{"name":"fc-br0","mac":"aa:00:00:00:00:01"},{"name":"veth1","mac":"aa:00:00:00:00:02"},{"name":"eth0","mac":"aa:00:00:00:00:03","sandbox":"/var/run/netns/pod"},
                           {"name":"tap0","mac":"bb:00:00:00:00:04","sandbox":"/var/run/netns/pod"},
                           {"name":"tap0","mac":"aa:00:00:00:00:03","sandbox":"vm-1"}],
             "ips":[{"version":"4","interface":2,"address":"192.168.1.2/24","gateway":"192.168.1.1"},
                    {"version":"4","interface":4,"address":"192.168.1.2/24","gateway":"192.168.1.1"}],
             "routes":[{"dst":"0.0.0.0/0"}],
             "dns":{"nameservers":["1.1.1.1"]}}
            """), CniResultJson.ToJson(result, "0.4.0")), CniResultJson.Write(result, "0.4.0"));
        Assert.Equal(("tap0", "tap0"), TcRedirectTapPlugin.FindVmTapPair(result, "vm-1") is { } pair ? (pair.Vm.Name, pair.Tap.Name) : default);
        Assert.Equal(Netns, TcRedirectTapPlugin.FindVmTapPair(result, "vm-1")!.Value.Tap.Sandbox);
    }

    [Fact]
    public void AppendTap_copies_only_the_ips_of_the_veth_in_this_netns()
    {
        CniResult previous = CniResultJson.Parse("""
            {"cniVersion":"1.0.0",
             "interfaces":[{"name":"eth0"},{"name":"eth0","sandbox":"/var/run/netns/other"},{"name":"eth0","sandbox":"/var/run/netns/pod"}],
             "ips":[{"address":"10.0.0.1/24","interface":0},{"address":"10.0.1.1/24","interface":1},{"address":"10.0.2.1/24","interface":2},{"address":"10.0.3.1/24"}]}
            """);

        CniResult result = TcRedirectTapPlugin.AppendTap(previous, Invocation, new Link(3, "eth0", "aa:00:00:00:00:03", 1500, 1, "veth"), new Link(4, "tap0", null, 1500, 1, "tun"));

        Assert.Equal(["10.0.2.1/24"], result.Ips.Skip(4).Select(ip => ip.Address.ToString()));
        Assert.Equal(4, result.Ips[4].Interface);
    }

    [Fact]
    public void FindVmTapPair_finds_nothing_without_the_pseudo_interface_and_refuses_ambiguity()
    {
        CniResult none = CniResultJson.Parse("""{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/pod"}]}""");
        Assert.Null(TcRedirectTapPlugin.FindVmTapPair(none, "vm-1"));

        CniResult twoVms = CniResultJson.Parse("""{"cniVersion":"1.0.0","interfaces":[{"name":"tap0","sandbox":"vm-1"},{"name":"tap1","sandbox":"vm-1"}]}""");
        Assert.Contains("expected at most 1 interface in sandbox \"vm-1\"", Assert.Throws<PluginFailure>(() => TcRedirectTapPlugin.FindVmTapPair(twoVms, "vm-1")).Message);

        CniResult twoTaps = CniResultJson.Parse("""{"cniVersion":"1.0.0","interfaces":[{"name":"tap0","sandbox":"vm-1"},{"name":"tap0","sandbox":"/a"},{"name":"tap0","sandbox":"/b"}]}""");
        Assert.Contains("expected at most 1 interface named \"tap0\"", Assert.Throws<PluginFailure>(() => TcRedirectTapPlugin.FindVmTapPair(twoTaps, "vm-1")).Message);
    }
}
