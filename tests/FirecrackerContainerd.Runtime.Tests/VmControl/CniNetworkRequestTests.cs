using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.VmControl;
using FirecrackerContainerd.Ttrpc;

namespace FirecrackerContainerd.Runtime.Tests.VmControl;

public sealed class CniNetworkRequestTests
{
    private static CreateVMRequest Request(params FirecrackerNetworkInterface[] nics)
    {
        var request = new CreateVMRequest { VMID = "vm1" };
        request.NetworkInterfaces.Add(nics);
        return request;
    }

    private static FirecrackerNetworkInterface Cni(string network = "fcnet", string ifName = "", string confDir = "", params string[] binPath)
    {
        var config = new CNIConfiguration { NetworkName = network, InterfaceName = ifName, ConfDir = confDir };
        config.BinPath.Add(binPath);
        return new FirecrackerNetworkInterface { CNIConfig = config };
    }

    private static FirecrackerNetworkInterface Static() =>
        new() { StaticConfig = new StaticNetworkConfiguration { MacAddress = "06:00:ac:10:00:02", HostDevName = "tap0" } };

    [Fact]
    public void A_request_without_a_CNI_interface_has_none()
    {
        Assert.Null(CniNetworkRequest.FromRequest(Request()));
        Assert.Null(CniNetworkRequest.FromRequest(Request(Static())));
    }

    [Fact]
    public void Left_out_fields_take_upstreams_defaults_with_Debians_plugin_directory_after_upstreams()
    {
        CniNetworkRequest cni = CniNetworkRequest.FromRequest(Request(Cni()))!;

        Assert.Equal(("fcnet", "veth0", "/etc/cni/conf.d"), (cni.NetworkName, cni.InterfaceName, cni.ConfDir));
        Assert.Equal<string>(["/opt/cni/bin", "/usr/lib/cni"], cni.BinPath);
        Assert.Empty(cni.Args);
    }

    [Fact]
    public void Given_fields_and_args_are_kept()
    {
        FirecrackerNetworkInterface nic = Cni("net-1", "eth1", "/srv/cni/conf", "/srv/cni/bin");
        nic.CNIConfig.Args.Add(new CNIConfiguration.Types.CNIArg { Key = "IgnoreUnknown", Value = "1" });

        CniNetworkRequest cni = CniNetworkRequest.FromRequest(Request(nic))!;

        Assert.Equal(("net-1", "eth1", "/srv/cni/conf"), (cni.NetworkName, cni.InterfaceName, cni.ConfDir));
        Assert.Equal<string>(["/srv/cni/bin"], cni.BinPath);
        Assert.Equal<KeyValuePair<string, string>>([new("IgnoreUnknown", "1")], cni.Args);
    }

    [Theory]
    [InlineData("", "", "", "NetworkName")]
    [InlineData("-net", "", "", "NetworkName")]
    [InlineData("fc net", "", "", "NetworkName")]
    [InlineData("fcnet", "eth0 fc.init=/bin/sh", "", "InterfaceName")]
    [InlineData("fcnet", "averyveryverylongname", "", "InterfaceName")]
    [InlineData("fcnet", "", "conf.d", "not an absolute directory path")]
    [InlineData("fcnet", "", "/etc/cni:x", "not an absolute directory path")]
    public void A_bad_field_is_InvalidArgument_naming_it(string network, string ifName, string confDir, string named)
    {
        var e = Assert.Throws<TtrpcException>(() => CniNetworkRequest.FromRequest(Request(Cni(network, ifName, confDir))));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("create vm \"vm1\": NetworkInterfaces[0]", e.Message, StringComparison.Ordinal);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "1")]
    [InlineData("K=V", "1")]
    [InlineData("K", "1;X=2")]
    public void A_malformed_CNI_ARGS_pair_is_InvalidArgument(string key, string value)
    {
        FirecrackerNetworkInterface nic = Cni();
        nic.CNIConfig.Args.Add(new CNIConfiguration.Types.CNIArg { Key = key, Value = value });

        var e = Assert.Throws<TtrpcException>(() => CniNetworkRequest.FromRequest(Request(nic)));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("CNIConfig.Args", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void One_CNI_interface_per_VM_alone_and_without_static_configuration()
    {
        Assert.Contains("both have CNIConfig", Invalid(Request(Cni(), Cni())), StringComparison.Ordinal);
        Assert.Contains("cannot be combined with other interfaces", Invalid(Request(Static(), Cni())), StringComparison.Ordinal);
        FirecrackerNetworkInterface both = Cni();
        both.StaticConfig = Static().StaticConfig;
        Assert.Contains("either CNIConfig or StaticConfig", Invalid(Request(both)), StringComparison.Ordinal);
    }

    [Fact]
    public void MMDS_on_a_CNI_interface_is_Unimplemented()
    {
        FirecrackerNetworkInterface nic = Cni();
        nic.AllowMMDS = true;

        Assert.Equal(StatusCode.Unimplemented, Assert.Throws<TtrpcException>(() => CniNetworkRequest.FromRequest(Request(nic))).StatusCode);
    }

    [Fact]
    public void A_plan_reads_the_network_up_front_and_a_missing_one_is_InvalidArgument_naming_the_directory()
    {
        string dir = Directory.CreateTempSubdirectory("cni-conf-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "10-fcnet.conflist"),
                """{"cniVersion":"1.0.0","name":"fcnet","plugins":[{"type":"ptp"},{"type":"tc-redirect-tap"}]}""");
            var config = new RuntimeConfig { KernelImagePath = "/vmlinuz", KernelArgs = "console=ttyS0" };

            CreateVmPlan plan = CreateVmPlan.From(config, Request(Cni("fcnet", "", dir)));
            var missing = Assert.Throws<TtrpcException>(() => CreateVmPlan.From(config, Request(Cni("other", "", dir))));

            Assert.Equal(("fcnet", 2), (plan.CniNetwork!.Name, plan.CniNetwork.Plugins.Length));
            Assert.Empty(plan.Devices.NetworkInterfaces);
            Assert.Equal("console=ttyS0", plan.Config.KernelArgs);
            Assert.Equal(StatusCode.InvalidArgument, missing.StatusCode);
            Assert.Contains($"NetworkInterfaces[0].CNIConfig: no CNI network named \"other\" in {dir}", missing.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Invalid(CreateVMRequest request)
    {
        var e = Assert.Throws<TtrpcException>(() => CniNetworkRequest.FromRequest(request));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        return e.Message;
    }
}
