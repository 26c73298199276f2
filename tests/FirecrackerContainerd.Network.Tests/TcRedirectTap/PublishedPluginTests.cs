using System.Text.Json.Nodes;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Tests.Support;

namespace FirecrackerContainerd.Network.Tests.TcRedirectTap;

// The published native plugin, run as a CNI runtime runs it.
[Trait("Category", "Network")]
public class PublishedPluginTests
{
    [Fact]
    public async Task Version_lists_the_spec_versions_it_supports()
    {
        var runner = new CniRunner(new CniRunnerOptions([await TcRedirectTapBinary.RequireDirectoryAsync()]));
        Assert.Equal(["0.3.0", "0.3.1", "0.4.0", "1.0.0"], (await runner.VersionAsync("tc-redirect-tap")).ToArray());
    }

    [Theory]
    [InlineData("{not json", null, 6, "error unmarshalling network config")]
    [InlineData("""{"cniVersion":"1.0.0","name":"fcnet","type":"tc-redirect-tap"}""", null, 7, "no previous result was found, was this plugin chained with a previous one?")]
    [InlineData("""{"cniVersion":"1.1.0","name":"fcnet","type":"tc-redirect-tap"}""", null, 1, "incompatible CNI versions")]
    [InlineData(PrevResultConfig, "/var/run/netns/fcn-missing-0", 4, "CNI_NETNS: network namespace /var/run/netns/fcn-missing-0 does not exist")]
    [InlineData(PrevResultConfig, "", 4, "required env variables [CNI_NETNS] missing")]
    public async Task Bad_input_gives_an_error_result_with_its_code_and_a_non_zero_exit(string stdin, string? netns, int code, string message)
    {
        (int exit, string stdout, _) = await TcRedirectTapBinary.RunAsync(Env("ADD", netns ?? "/var/run/netns/fcn-missing-0"), stdin);

        Assert.Equal(1, exit);
        JsonNode error = JsonNode.Parse(stdout)!;
        Assert.Equal(code, (int)error["code"]!);
        Assert.StartsWith(message, (string)error["msg"]!);
        Assert.NotNull(error["cniVersion"]);
    }

    [Fact]
    public async Task Delete_in_a_namespace_that_is_gone_succeeds_with_nothing_to_do()
    {
        (int exit, string stdout, string stderr) = await TcRedirectTapBinary.RunAsync(Env("DEL", "/var/run/netns/fcn-missing-0"), PrevResultConfig);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Equal(string.Empty, stdout);
    }

    [Fact]
    public async Task Add_of_a_0_3_1_config_redirects_the_veth_and_answers_in_0_3_1_then_delete_removes_it()
    {
        await using PodNetwork net = await PodNetwork.CreateAsync(mtu: 1400);
        string vethMac = (await net.Pod.IpAsync("-o", "link", "show", "eth0")).Split("link/ether ")[1][..17];
        string config = $$$"""
            {"cniVersion":"0.3.1","name":"fcnet","type":"tc-redirect-tap",
             "prevResult":{"cniVersion":"0.3.1",
               "interfaces":[{"name":"{{{net.HostEnd}}}"},{"name":"eth0","mac":"{{{vethMac}}}","sandbox":"{{{net.Pod.Path}}}"}],
               "ips":[{"version":"4","interface":1,"address":"10.77.0.2/24","gateway":"10.77.0.1"}],
               "dns":{} } }
            """;
        Dictionary<string, string> env = Env("ADD", net.Pod.Path);
        env["CNI_ARGS"] = "IgnoreUnknown=1;TC_REDIRECT_TAP_NAME=tap1;TC_REDIRECT_TAP_UID=4242;TC_REDIRECT_TAP_GID=4343";

        (int exit, string stdout, string stderr) = await TcRedirectTapBinary.RunAsync(env, config);

        Assert.True(exit == 0, stdout + stderr);
        string tapMac = (await net.Pod.IpAsync("-o", "link", "show", "tap1")).Split("link/ether ")[1][..17];
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$$"""
            {"cniVersion":"0.3.1",
             "interfaces":[{"name":"{{{net.HostEnd}}}"},{"name":"eth0","mac":"{{{vethMac}}}","sandbox":"{{{net.Pod.Path}}}"},
                           {"name":"tap1","mac":"{{{tapMac}}}","sandbox":"{{{net.Pod.Path}}}"},
                           {"name":"tap1","mac":"{{{vethMac}}}","sandbox":"vm-1"}],
             "ips":[{"version":"4","interface":1,"address":"10.77.0.2/24","gateway":"10.77.0.1"},
                    {"version":"4","interface":3,"address":"10.77.0.2/24","gateway":"10.77.0.1"}],
             "dns":{}}
            """), JsonNode.Parse(stdout)), stdout);
        Assert.Contains("mtu 1400", await net.Pod.IpAsync("link", "show", "tap1"));
        Assert.Contains("user 4242 group 4343", await net.Pod.IpAsync("-d", "link", "show", "tap1"));
        Assert.Empty(await Network.Tap.TapRedirect.CheckAsync(net.Pod.Path, "eth0", "tap1"));

        (exit, stdout, stderr) = await TcRedirectTapBinary.RunAsync(Env("DEL", net.Pod.Path), ConfigWithPrevResult(config, stdout));

        Assert.True(exit == 0, stdout + stderr);
        Assert.DoesNotContain("tap1", await net.Pod.IpAsync("link", "show"));
        Assert.DoesNotContain("ingress", await RtnetlinkTests.Tc(net, "qdisc", "show", "dev", "eth0"));
    }

    private const string PrevResultConfig = """{"cniVersion":"1.0.0","name":"fcnet","type":"tc-redirect-tap","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/fcn-missing-0"}]}}""";

    private static string ConfigWithPrevResult(string config, string result)
    {
        JsonObject json = JsonNode.Parse(config)!.AsObject();
        json["prevResult"] = JsonNode.Parse(result);
        return json.ToJsonString();
    }

    private static Dictionary<string, string> Env(string command, string netns) => new()
    {
        ["CNI_COMMAND"] = command,
        ["CNI_CONTAINERID"] = "vm-1",
        ["CNI_NETNS"] = netns,
        ["CNI_IFNAME"] = "eth0",
        ["CNI_PATH"] = "/usr/lib/cni",
        ["CNI_ARGS"] = string.Empty,
    };
}
