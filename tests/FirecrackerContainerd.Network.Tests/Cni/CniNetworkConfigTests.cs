using FirecrackerContainerd.Network.Cni;

namespace FirecrackerContainerd.Network.Tests.Cni;

public sealed class CniNetworkConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-cni-conf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Load_finds_a_conflist_by_network_name_keeping_plugin_fields()
    {
        Write("10-other.conflist", """{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"ptp"}]}""");
        Write("20-fcnet.conflist", """{"cniVersion":"0.4.0","name":"fcnet","disableCheck":"true","plugins":[{"type":"bridge","bridge":"fc-br0","ipam":{"type":"host-local"}},{"type":"tc-redirect-tap"}]}""");

        CniNetworkConfig network = CniNetworkConfig.Load(_dir, "fcnet");

        Assert.Equal("fcnet", network.Name);
        Assert.Equal("0.4.0", network.CniVersion);
        Assert.True(network.DisableCheck);
        Assert.Equal(["bridge", "tc-redirect-tap"], network.Plugins.Select(CniNetworkConfig.TypeOf));
        Assert.Equal("fc-br0", (string?)network.Plugins[0]["bridge"]);
        Assert.EndsWith("20-fcnet.conflist", network.Source);
    }

    [Fact]
    public void Load_takes_the_first_file_in_name_order_when_two_name_the_same_network()
    {
        Write("20-b.conflist", """{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"second"}]}""");
        Write("10-a.conflist", """{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"first"}]}""");
        Assert.Equal("first", CniNetworkConfig.TypeOf(CniNetworkConfig.Load(_dir, "net").Plugins[0]));
    }

    [Fact]
    public void Load_makes_a_single_plugin_conf_a_one_plugin_chain()
    {
        Write("10-single.conf", """{"cniVersion":"0.3.1","name":"single","type":"bridge","bridge":"br1"}""");

        CniNetworkConfig network = CniNetworkConfig.Load(_dir, "single");

        Assert.Equal("0.3.1", network.CniVersion);
        Assert.Equal("br1", (string?)Assert.Single(network.Plugins)["bridge"]);
    }

    [Fact]
    public void Load_of_an_unknown_network_names_the_directory()
    {
        Write("10-a.conflist", """{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"ptp"}]}""");
        var e = Assert.Throws<CniConfigException>(() => CniNetworkConfig.Load(_dir, "missing"));
        Assert.Equal($"no CNI network named \"missing\" in {_dir}", e.Message);
        Assert.Throws<CniConfigException>(() => CniNetworkConfig.Load(Path.Combine(_dir, "nope"), "a"));
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("""{"cniVersion":"1.0.0","plugins":[{"type":"ptp"}]}""", "name is missing")]
    [InlineData("""{"cniVersion":"1.0.0","name":"../x","plugins":[{"type":"ptp"}]}""", "network name \"../x\" must start with")]
    [InlineData("""{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"ptp"}]}""", "cniVersion \"1.1.0\" is not one of 0.3.0, 0.3.1, 0.4.0, 1.0.0")]
    [InlineData("""{"name":"n","plugins":[{"type":"ptp"}]}""", "cniVersion \"\" is not one of")]
    [InlineData("""{"cniVersion":"1.0.0","name":"n","plugins":[]}""", "plugins must be a non-empty list")]
    [InlineData("""{"cniVersion":"1.0.0","name":"n","plugins":[1]}""", "plugins[0] is not an object")]
    [InlineData("""{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}""", "plugins[0]: type \"../../bin/sh\" must name a plugin executable")]
    [InlineData("""{"cniVersion":"1.0.0","name":"n","plugins":[{}]}""", "plugins[0]: type \"\" must name a plugin executable")]
    [InlineData("""{"cniVersion":"1.0.0","name":"n","disableCheck":3,"plugins":[{"type":"ptp"}]}""", "disableCheck is not a boolean: 3")]
    public void ParseList_rejects_invalid_configurations_naming_the_file_and_field(string json, string expected)
    {
        var e = Assert.Throws<CniConfigException>(() => CniNetworkConfig.ParseList(json, "/etc/cni/net.d/10-x.conflist"));
        Assert.StartsWith("/etc/cni/net.d/10-x.conflist: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    private void Write(string name, string json) => File.WriteAllText(Path.Combine(_dir, name), json);
}
