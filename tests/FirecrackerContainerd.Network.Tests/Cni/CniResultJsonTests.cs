using System.Net;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Network.Cni;

namespace FirecrackerContainerd.Network.Tests.Cni;

public class CniResultJsonTests
{
    // The bridge plugin's result shape (spec section 5's example).
    private const string BridgeResult = """
        {
          "cniVersion": "1.0.0",
          "interfaces": [
            { "name": "cni0", "mac": "00:11:22:33:44:55" },
            { "name": "veth3243", "mac": "55:44:33:22:11:11" },
            { "name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue" }
          ],
          "ips": [ { "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2 } ],
          "routes": [ { "dst": "0.0.0.0/0" } ],
          "dns": { "nameservers": [ "10.1.0.1" ] }
        }
        """;

    [Fact]
    public void Parse_reads_interfaces_ips_routes_and_dns()
    {
        CniResult result = CniResultJson.Parse(BridgeResult);

        Assert.Equal("1.0.0", result.CniVersion);
        Assert.Equal(new CniInterface("eth0", "99:88:77:66:55:44", "/var/run/netns/blue"), result.Interfaces[2]);
        CniIpConfig ip = Assert.Single(result.Ips);
        Assert.Equal("10.1.0.5/16", ip.Address.ToString());
        Assert.Equal(IPAddress.Parse("10.1.0.1"), ip.Gateway);
        Assert.Equal(2, ip.Interface);
        Assert.Equal("0.0.0.0/0", Assert.Single(result.Routes).Destination.ToString());
        Assert.Equal(["10.1.0.1"], result.Dns.Nameservers.ToArray());
        Assert.Equal(ip, Assert.Single(result.IpsOf("eth0", "/var/run/netns/blue")));
        Assert.Empty(result.IpsOf("eth0", "/var/run/netns/red"));
    }

    [Fact]
    public void Write_of_1_0_0_round_trips_the_reference_shape()
    {
        string written = CniResultJson.Write(CniResultJson.Parse(BridgeResult), "1.0.0");
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(BridgeResult), JsonNode.Parse(written)), written);
    }

    [Theory]
    [InlineData("0.3.0")]
    [InlineData("0.3.1")]
    [InlineData("0.4.0")]
    public void Write_before_1_0_0_names_each_ips_version(string version)
    {
        CniResult result = CniResultJson.Parse(BridgeResult);
        result = result with { Ips = result.Ips.Add(new CniIpConfig(new CidrAddress(IPAddress.Parse("fd00::5"), 64), IPAddress.Parse("fd00::1"), 2)) };

        JsonNode written = JsonNode.Parse(CniResultJson.Write(result, version))!;

        Assert.Equal(version, (string?)written["cniVersion"]);
        Assert.Equal("4", (string?)written["ips"]![0]!["version"]);
        Assert.Equal("6", (string?)written["ips"]![1]!["version"]);
        Assert.Equal("fd00::5/64", (string?)written["ips"]![1]!["address"]);
        Assert.Equal(version, CniResultJson.Parse(written).CniVersion);
    }

    [Fact]
    public void Write_of_an_empty_result_keeps_only_the_version_and_dns()
    {
        var empty = new CniResult("1.0.0", [], [], [], CniDns.Empty);
        Assert.Equal("""{"cniVersion":"1.0.0","dns":{}}""", CniResultJson.Write(empty, "1.0.0"));
    }

    [Theory]
    [InlineData("{", "result is not JSON")]
    [InlineData("[]", "result is not a JSON object")]
    [InlineData("{}", "result.cniVersion is missing")]
    [InlineData("""{"cniVersion":"0.2.0"}""", "result.cniVersion \"0.2.0\" is not one of 0.3.0, 0.3.1, 0.4.0, 1.0.0")]
    [InlineData("""{"cniVersion":1}""", "result.cniVersion is not a string: 1")]
    [InlineData("""{"cniVersion":"1.0.0","interfaces":{}}""", "result.interfaces is not an array")]
    [InlineData("""{"cniVersion":"1.0.0","interfaces":[{"mac":"x"}]}""", "result.interfaces[0].name is missing")]
    [InlineData("""{"cniVersion":"1.0.0","interfaces":[{"name":""}]}""", "result.interfaces[0].name is empty")]
    [InlineData("""{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5"}]}""", "result.ips[0].address \"10.1.0.5\" is not an address with a prefix length")]
    [InlineData("""{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/33"}]}""", "is not an address with a prefix length")]
    [InlineData("""{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/16","gateway":"fd00::1"}]}""", "result.ips[0].gateway fd00::1 is not of the address's family")]
    [InlineData("""{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/16","gateway":"nope"}]}""", "result.ips[0].gateway \"nope\" is not an IP address")]
    [InlineData("""{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/16","interface":0}]}""", "result.ips[0].interface 0 names no interface (the result has 0)")]
    [InlineData("""{"cniVersion":"1.0.0","interfaces":[{"name":"a"}],"ips":[{"address":"10.1.0.5/16","interface":-1}]}""", "result.ips[0].interface is not a non-negative integer: -1")]
    [InlineData("""{"cniVersion":"1.0.0","interfaces":[{"name":"a"}],"ips":[{"address":"10.1.0.5/16","interface":"0"}]}""", "result.ips[0].interface is not a non-negative integer: \"0\"")]
    [InlineData("""{"cniVersion":"0.4.0","ips":[{"version":"6","address":"10.1.0.5/16"}]}""", "result.ips[0].version \"6\" does not match the address 10.1.0.5/16")]
    [InlineData("""{"cniVersion":"1.0.0","routes":[{"gw":"10.0.0.1"}]}""", "result.routes[0].dst is missing")]
    [InlineData("""{"cniVersion":"1.0.0","dns":{"nameservers":[1]}}""", "result.dns.nameservers[0] is not a string")]
    [InlineData("""{"cniVersion":"1.0.0","dns":[]}""", "result.dns is not an object")]
    public void Parse_rejects_what_the_spec_does_not_allow_naming_the_field(string json, string expected)
    {
        var e = Assert.Throws<CniFormatException>(() => CniResultJson.Parse(json));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("10.1.0.5/16", true)]
    [InlineData("0.0.0.0/0", true)]
    [InlineData("fd00::5/128", true)]
    [InlineData("10.1.0.5", false)]
    [InlineData("10.1.0.5/", false)]
    [InlineData("10.1.0.5/+8", false)]
    [InlineData("fd00::5/129", false)]
    [InlineData("fe80::1%eth0/64", false)]
    [InlineData("/16", false)]
    public void CidrAddress_parses_only_an_address_with_a_prefix_length(string text, bool valid)
    {
        Assert.Equal(valid, CidrAddress.TryParse(text, out CidrAddress value));
        if (valid)
        {
            Assert.Equal(text, value.ToString());
        }
    }

    [Fact]
    public void Error_results_are_written_and_read_with_code_msg_and_details()
    {
        string json = new CniError(7, "Invalid 'config'", "subnet \"x\" too small").ToJson("1.0.0");
        Assert.Equal("""{"cniVersion":"1.0.0","code":7,"msg":"Invalid 'config'","details":"subnet \"x\" too small"}""", json);
        Assert.Equal(new CniError(7, "Invalid 'config'", "subnet \"x\" too small"), CniError.TryParse(json));
        Assert.Null(CniError.TryParse("""{"msg":"no code"}"""));
        Assert.Null(CniError.TryParse("not json"));
    }
}
