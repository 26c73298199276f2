using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.TcRedirectTap;

namespace FirecrackerContainerd.Network.Tests.TcRedirectTap;

public class PluginInvocationTests
{
    private const string Config = """{"cniVersion":"1.0.0","name":"fcnet","type":"tc-redirect-tap","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/pod"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}]}}""";

    [Fact]
    public void Parse_reads_the_environment_config_and_previous_result()
    {
        PluginInvocation invocation = PluginInvocation.Parse(Env(("CNI_ARGS", "IgnoreUnknown=1;TC_REDIRECT_TAP_NAME=tap1;TC_REDIRECT_TAP_UID=123;TC_REDIRECT_TAP_GID=321")), Config);

        Assert.Equal("ADD", invocation.Command);
        Assert.Equal("vm-1", invocation.ContainerId);
        Assert.Equal("/var/run/netns/pod", invocation.NetnsPath);
        Assert.Equal("eth0", invocation.IfName);
        Assert.Equal("1.0.0", invocation.CniVersion);
        Assert.Equal(new TapArguments("tap1", 123, 321), invocation.Tap);
        Assert.Equal("10.1.0.5/24", Assert.Single(invocation.PreviousResult!.Ips).Address.ToString());
    }

    [Theory]
    [InlineData("CNI_COMMAND", null, 4, "required env variables [CNI_COMMAND] missing")]
    [InlineData("CNI_COMMAND", "GC", 4, "unknown CNI_COMMAND: GC")]
    [InlineData("CNI_NETNS", null, 4, "required env variables [CNI_NETNS] missing")]
    [InlineData("CNI_PATH", "", 4, "required env variables [CNI_PATH] missing")]
    [InlineData("CNI_CONTAINERID", "-vm", 4, "invalid characters in CNI_CONTAINERID")]
    [InlineData("CNI_IFNAME", "eth0:1", 4, "invalid CNI_IFNAME: interface name \"eth0:1\" contains")]
    [InlineData("CNI_ARGS", "TC_REDIRECT_TAP_UID", 4, "invalid CNI_ARGS entry \"TC_REDIRECT_TAP_UID\": expected KEY=VALUE")]
    [InlineData("CNI_ARGS", "TC_REDIRECT_TAP_UID=root", 4, "invalid CNI_ARGS TC_REDIRECT_TAP_UID: \"root\" is not a numeric id")]
    [InlineData("CNI_ARGS", "TC_REDIRECT_TAP_GID=-1", 4, "invalid CNI_ARGS TC_REDIRECT_TAP_GID: \"-1\" is not a numeric id")]
    [InlineData("CNI_ARGS", "TC_REDIRECT_TAP_NAME=a123456789abcdef", 4, "invalid CNI_ARGS TC_REDIRECT_TAP_NAME: interface name \"a123456789abcdef\" is longer than 15 bytes")]
    public void Parse_rejects_a_bad_environment_with_code_4_naming_the_variable(string variable, string? value, int code, string message)
    {
        var e = Assert.Throws<PluginFailure>(() => PluginInvocation.Parse(Env((variable, value)), Config));
        Assert.Equal(code, e.Error.Code);
        Assert.StartsWith(message, e.Error.Message);
    }

    [Theory]
    [InlineData("{", 6, "error unmarshalling network config: ")]
    [InlineData("[]", 6, "error unmarshalling network config: not a JSON object")]
    [InlineData("""{"cniVersion":"1.0.0"}""", 7, "missing network name")]
    [InlineData("""{"cniVersion":"1.0.0","name":"a b"}""", 7, "invalid characters found in network name")]
    [InlineData("""{"name":"n"}""", 6, "network config has no cniVersion")]
    [InlineData("""{"cniVersion":"0.2.0","name":"n"}""", 1, "incompatible CNI versions")]
    [InlineData("""{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"nope"}]}}""", 6, "failed to parse previous CNI result")]
    public void Parse_rejects_a_bad_configuration_with_the_spec_code(string stdin, int code, string message)
    {
        var e = Assert.Throws<PluginFailure>(() => PluginInvocation.Parse(Env(), stdin));
        Assert.Equal(code, e.Error.Code);
        Assert.StartsWith(message, e.Error.Message);
    }

    [Fact]
    public void Check_of_a_0_3_1_configuration_is_an_incompatible_version()
    {
        var e = Assert.Throws<PluginFailure>(() => PluginInvocation.Parse(Env(("CNI_COMMAND", "CHECK")), Config.Replace("\"1.0.0\",\"name\"", "\"0.3.1\",\"name\"", StringComparison.Ordinal)));
        Assert.Equal(CniErrorCodes.IncompatibleVersion, e.Error.Code);
        Assert.Equal("config version does not allow CHECK", e.Error.Message);
    }

    [Fact]
    public void Delete_needs_no_netns()
    {
        PluginInvocation invocation = PluginInvocation.Parse(Env(("CNI_COMMAND", "DEL"), ("CNI_NETNS", null)), Config);
        Assert.Equal(string.Empty, invocation.NetnsPath);
    }

    [Fact]
    public void Version_answers_with_the_supported_versions_and_echoes_the_input_version()
    {
        Assert.Equal("""{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}""", FirecrackerContainerd.TcRedirectTap.Program.VersionResult("""{"cniVersion":"0.4.0"}"""));
        Assert.Equal("""{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}""", FirecrackerContainerd.TcRedirectTap.Program.VersionResult(string.Empty));
    }

    private static Func<string, string?> Env(params (string Name, string? Value)[] overrides)
    {
        var env = new Dictionary<string, string?>
        {
            ["CNI_COMMAND"] = "ADD",
            ["CNI_CONTAINERID"] = "vm-1",
            ["CNI_NETNS"] = "/var/run/netns/pod",
            ["CNI_IFNAME"] = "eth0",
            ["CNI_PATH"] = "/usr/lib/cni",
        };
        foreach ((string name, string? value) in overrides)
        {
            env[name] = value;
        }

        return name => env.GetValueOrDefault(name);
    }
}
