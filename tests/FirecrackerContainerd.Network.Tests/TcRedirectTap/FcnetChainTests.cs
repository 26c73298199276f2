using System.Net;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Tap;
using FirecrackerContainerd.Network.Tests.Support;

namespace FirecrackerContainerd.Network.Tests.TcRedirectTap;

// Upstream firecracker-containerd's demo chain (tools/demo/fcnet.conflist: bridge with host-local IPAM and ipMasq,
// firewall, tc-redirect-tap, loopback) with Debian's plugins from /usr/lib/cni and ours. The runtime's networking
// domain is a namespace the test makes, so the bridge, the veth's host end and the iptables rules live there and
// never on the real host.
[Trait("Category", "Network")]
public sealed class FcnetChainTests : IAsyncLifetime
{
    private const string ContainerId = "vm-fcnet-1";
    private const string DebianPlugins = "/usr/lib/cni";

    private readonly string _confDir = Directory.CreateTempSubdirectory("fc-cni-net.d-").FullName;
    private readonly string _ipamDir = Directory.CreateTempSubdirectory("fc-cni-ipam-").FullName;
    private readonly string _bridge = "fcbr" + Guid.NewGuid().ToString("N")[..6];
    private readonly int _subnet = Random.Shared.Next(16, 250);
    private TestNamespace _host = null!;
    private TestNamespace _pod = null!;

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(Path.Combine(DebianPlugins, "bridge")), "the CNI plugins are needed: apt-get install containernetworking-plugins (scripts/install-deps)");
        _host = await TestNamespace.CreateAsync("cnihost");
        _pod = await TestNamespace.CreateAsync("cnipod");
    }

    public async Task DisposeAsync()
    {
        await _pod.DisposeAsync();
        await _host.DisposeAsync();
        Directory.Delete(_confDir, recursive: true);
        Directory.Delete(_ipamDir, recursive: true);
    }

    [Theory]
    [InlineData("1.0.0")]
    [InlineData("0.4.0")]
    public async Task Add_check_and_delete_through_the_demo_chain(string version)
    {
        CniNetworkConfig network = WriteConflist(version);
        var runner = new CniRunner(new CniRunnerOptions([DebianPlugins, await TcRedirectTapBinary.RequireDirectoryAsync()], RuntimeNetworkNamespace: _host.Path));
        var attachment = new CniAttachment(ContainerId, _pod.Path, "eth0", [new("IgnoreUnknown", "1"), new("TC_REDIRECT_TAP_NAME", "tap0")]);

        CniResult result = await runner.AddAsync(network, attachment);

        // The result: bridge, host veth, eth0 in the pod, then the tap and the VM's pseudo-interface.
        Assert.Equal(version, result.CniVersion);
        Assert.Equal(5, result.Interfaces.Length);
        Assert.Equal(new CniInterface(_bridge, result.Interfaces[0].Mac, null), result.Interfaces[0]);
        Assert.Equal(("eth0", _pod.Path), (result.Interfaces[2].Name, result.Interfaces[2].Sandbox));
        string tapMac = Mac(await _pod.IpAsync("-o", "link", "show", "tap0"));
        Assert.Equal(new CniInterface("tap0", tapMac, _pod.Path), result.Interfaces[3]);
        Assert.Equal(new CniInterface("tap0", result.Interfaces[2].Mac, ContainerId), result.Interfaces[4]);
        Assert.Equal(Mac(await _pod.IpAsync("-o", "link", "show", "eth0")), result.Interfaces[4].Mac);
        Assert.Equal(2, result.Ips.Length);
        Assert.Equal((2, 4), (result.Ips[0].Interface, result.Ips[1].Interface));
        Assert.Equal(result.Ips[0].Address, result.Ips[1].Address);
        Assert.Equal(IPAddress.Parse($"10.{_subnet}.7.1"), result.Ips[1].Gateway);
        string podIp = result.Ips[0].Address.Address.ToString();
        Assert.Empty(result.Dns.Nameservers); // the bridge plugin reports its own "dns" key (none here), not host-local's
        Assert.StartsWith($"10.{_subnet}.7.", podIp);

        // In the pod: the tap, up, redirected both ways with eth0.
        Assert.Empty(await TapRedirect.CheckAsync(_pod.Path, "eth0", "tap0"));
        Assert.Contains("Egress Redirect to device tap0) stolen", await Tc(_pod, "filter", "show", "dev", "eth0", "ingress"));

        // In the runtime's namespace, not on the real host: the bridge and the rules of ipMasq and firewall.
        Assert.Contains(_bridge, await _host.IpAsync("link", "show"));
        Assert.DoesNotContain(_bridge, await TestNamespace.Ip("link", "show"));
        string rules = await IptablesSave(_host);
        Assert.Contains($"-s {podIp}/32", rules);
        Assert.Contains("CNI-FORWARD", rules);
        Assert.True(File.Exists(Path.Combine(_ipamDir, "fcnet", podIp)), "host-local reserved the pod's address in its data directory");

        await runner.CheckAsync(network, attachment, result);

        await _pod.IpAsync("link", "del", "tap0");
        var broken = await Assert.ThrowsAsync<CniPluginException>(() => runner.CheckAsync(network, attachment, result));
        Assert.Equal("tc-redirect-tap", broken.Plugin);
        Assert.Equal(CniErrorCodes.Internal, broken.Error?.Code);
        Assert.Contains("tap tap0 does not exist", broken.Message);

        await runner.DeleteAsync(network, attachment, result);

        // Nothing left: no tap, eth0, qdisc or filter in the pod; no veth, masquerade or firewall rule for the pod,
        // and no address reservation, in the runtime's namespace.
        string podLinks = await _pod.IpAsync("link", "show");
        Assert.DoesNotContain("tap0", podLinks);
        Assert.DoesNotContain("eth0", podLinks);
        Assert.DoesNotContain("ingress", await Tc(_pod, "qdisc", "show"));
        Assert.Equal(new[] { "lo", _bridge }.Order(), (await _host.IpAsync("-o", "link", "show")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(':')[1].Trim().Split('@')[0]).Order());
        rules = await IptablesSave(_host);
        Assert.DoesNotContain(podIp, rules);
        Assert.DoesNotContain(ContainerId, rules);
        Assert.False(File.Exists(Path.Combine(_ipamDir, "fcnet", podIp)));

        await runner.DeleteAsync(network, attachment, result); // a second DEL finds nothing to do
    }

    private CniNetworkConfig WriteConflist(string version)
    {
        // Upstream points host-local at the host's /etc/resolv.conf; a file of the test's own keeps the test off the host's.
        File.WriteAllText(Path.Combine(_confDir, "resolv.conf"), $"nameserver 10.{_subnet}.7.53\nsearch fcnet.test\n");
        File.WriteAllText(Path.Combine(_confDir, "10-fcnet.conflist"), $$"""
            {
              "cniVersion": "{{version}}",
              "name": "fcnet",
              "plugins": [
                {
                  "type": "bridge",
                  "bridge": "{{_bridge}}",
                  "isDefaultGateway": true,
                  "forceAddress": false,
                  "ipMasq": true,
                  "hairpinMode": true,
                  "mtu": 1500,
                  "ipam": {
                    "type": "host-local",
                    "subnet": "10.{{_subnet}}.7.0/24",
                    "resolvConf": "{{Path.Combine(_confDir, "resolv.conf")}}",
                    "dataDir": "{{_ipamDir}}"
                  }
                },
                { "type": "firewall" },
                { "type": "tc-redirect-tap" },
                { "type": "loopback" }
              ]
            }
            """);
        return CniNetworkConfig.Load(_confDir, "fcnet");
    }

    private static string Mac(string ipLinkLine) => ipLinkLine.Split("link/ether ")[1][..17];

    private static async Task<string> Tc(TestNamespace ns, params string[] args)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return (await Tool.RunAsync("tc", ["-n", ns.Name, .. args], "iproute2", timeout.Token)).Stdout;
    }

    private static async Task<string> IptablesSave(TestNamespace ns)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return (await Tool.RunAsync("ip", ["netns", "exec", ns.Name, "iptables-save"], "iptables", timeout.Token)).Stdout;
    }
}
