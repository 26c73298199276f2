using System.Text.Json.Nodes;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Pods;
using FirecrackerContainerd.Runtime.Vm;
using VethPair = FirecrackerContainerd.Network.Tests.Support.PodNetwork;

namespace FirecrackerContainerd.Runtime.Tests.Pods;

/// <summary>
/// The VM a sandbox boots: its size from the pod's resources, and its network carried in from a real pod network
/// namespace (a veth configured as CNI's bridge plugin leaves it) through a TAP device and a redirect.
/// </summary>
public sealed class PodVmTests
{
    private static readonly RuntimeConfig Config = new() { KernelImagePath = "/vmlinuz", KernelArgs = "console=ttyS0", VcpuCount = 1, MemSizeMib = 256, PodMemoryOverheadMib = 128 };

    [Theory]
    [InlineData("0", "0", 1, 256)] // no limits: the configured size
    [InlineData("250000", "0", 3, 256)] // 2.5 CPUs round up
    [InlineData("0", "268435456", 1, 384)] // 256 MiB plus the overhead
    [InlineData("0", "1048577", 1, 130)] // a part of a MiB rounds up
    [InlineData("0", "1", 1, 129)]
    [InlineData("100000000", "0", 32, 256)] // capped
    public void A_sandbox_VM_is_sized_from_the_pods_resources(string quota, string memory, int vcpus, int mib)
    {
        RuntimeConfig sized = PodVm.Size(CriTask.Of(CriSpecs.Sandbox("pod1", cpuQuota: quota, memory: memory))!, Config);

        Assert.Equal((vcpus, mib), (sized.VcpuCount, sized.MemSizeMib));
        Assert.Equal(Config.KernelArgs, sized.KernelArgs);
    }

    [Fact]
    public async Task A_host_network_pod_boots_with_no_network_devices_and_the_shims_own_namespace()
    {
        JsonObject spec = CriSpecs.Sandbox("pod1", netns: null);

        (RuntimeConfig config, VmDevices devices) = await PodVm.PlanAsync(CriTask.Of(spec)!, spec, Config, CancellationToken.None);

        Assert.Same(VmDevices.None, devices);
        Assert.Equal(Config.KernelArgs, config.KernelArgs);
    }

    [Fact]
    public async Task A_pods_network_becomes_a_TAP_beside_its_veth_and_the_guest_gets_the_veths_MAC_address_and_route()
    {
        await using VethPair pair = await VethPair.CreateAsync(mtu: 1450);
        await pair.Pod.IpAsync("addr", "add", "10.88.0.5/16", "dev", VethPair.PodEnd);
        await pair.Pod.IpAsync("route", "add", "default", "via", "10.88.0.1");
        string mac = (await pair.Pod.IpAsync("-br", "link", "show", VethPair.PodEnd)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[2];
        JsonObject spec = CriSpecs.Sandbox("pod1", netns: pair.Pod.Path);

        (RuntimeConfig config, VmDevices devices) = await PodVm.PlanAsync(CriTask.Of(spec)!, spec, Config, CancellationToken.None);
        await using (devices.HostNetwork)
        {
            Assert.Equal($"console=ttyS0 fc.net={mac},10.88.0.5/16,10.88.0.1", config.KernelArgs);
            Assert.Equal(pair.Pod.Path, devices.NetworkNamespace);
            var nic = Assert.Single(devices.NetworkInterfaces);
            Assert.Equal((PodVm.InterfaceId, PodNetwork.TapName, mac), (nic.IfaceId, nic.HostDevName, nic.GuestMac));
            Assert.Contains("mtu 1450", await pair.Pod.IpAsync("link", "show", PodNetwork.TapName), StringComparison.Ordinal);
            Assert.Contains("ingress", await Tc(pair, VethPair.PodEnd), StringComparison.Ordinal);
        }

        Assert.DoesNotContain(PodNetwork.TapName, await pair.Pod.IpAsync("link", "show"), StringComparison.Ordinal);
        Assert.DoesNotContain("ingress", await Tc(pair, VethPair.PodEnd), StringComparison.Ordinal);
        Assert.Contains("10.88.0.5/16", await pair.Pod.IpAsync("addr", "show", VethPair.PodEnd), StringComparison.Ordinal); // the pod's own set-up is left alone
    }

    [Fact]
    public async Task A_pod_network_the_VM_cannot_take_is_refused_saying_why()
    {
        await using VethPair pair = await VethPair.CreateAsync();
        JsonObject bare = CriSpecs.Sandbox("pod1", netns: pair.Pod.Path);
        JsonObject missing = CriSpecs.Sandbox("pod1", netns: "/var/run/netns/fcn-no-such-namespace");

        var noAddress = await Assert.ThrowsAsync<PodNetworkException>(() => PodVm.PlanAsync(CriTask.Of(bare)!, bare, Config, CancellationToken.None));
        var noNamespace = await Assert.ThrowsAsync<PodNetworkException>(() => PodVm.PlanAsync(CriTask.Of(missing)!, missing, Config, CancellationToken.None));
        await pair.Pod.IpAsync("addr", "add", "10.88.0.5/16", "dev", VethPair.PodEnd);
        await pair.Pod.IpAsync("link", "add", "extra0", "type", "veth", "peer", "name", "extra1");
        await pair.Pod.IpAsync("addr", "add", "10.99.0.5/24", "dev", "extra0");
        var two = await Assert.ThrowsAsync<PodNetworkException>(() => PodVm.PlanAsync(CriTask.Of(bare)!, bare, Config, CancellationToken.None));

        Assert.Contains("has no interface with an IPv4 address (did CNI run?)", noAddress.Message, StringComparison.Ordinal);
        Assert.Equal("the pod's network namespace /var/run/netns/fcn-no-such-namespace does not exist", noNamespace.Message);
        Assert.Contains("has 2 interfaces with IPv4 addresses", two.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(PodNetwork.TapName, await pair.Pod.IpAsync("link", "show"), StringComparison.Ordinal);
    }

    private static async Task<string> Tc(VethPair pair, string device)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return (await Tool.RunAsync("tc", ["-n", pair.Pod.Name, "qdisc", "show", "dev", device], "iproute2", timeout.Token)).Stdout;
    }
}
