using System.Text.Json.Nodes;
using FirecrackerContainerd.Network.Cni;

namespace FirecrackerContainerd.Network.Tests.Cni;

// Plugins here are small shell scripts: each records its stdin and CNI_ environment under the plugin directory, then
// prints what the test gave it.
public sealed class CniRunnerTests : IDisposable
{
    private static readonly CniAttachment Attachment = new("vm-1", "/var/run/netns/pod", "eth0", [new("IgnoreUnknown", "1"), new("K", "V")]);

    private readonly string _dir = Directory.CreateTempSubdirectory("fc-cni-plugins-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Add_runs_the_chain_in_order_handing_each_plugin_the_previous_result()
    {
        Plugin("first", $"printf '%s' '{Result("eth0", "10.1.0.5/16")}'");
        Plugin("second", $"printf '%s' '{Result("tap0", "10.1.0.6/16")}'");
        CniNetworkConfig network = Network("1.0.0", """{"type":"first","bridge":"br0","prevResult":{"stale":true}}""", """{"type":"second"}""");

        CniResult result = await Runner().AddAsync(network, Attachment);

        Assert.Equal("tap0", Assert.Single(result.Interfaces).Name);
        Assert.Equal(["first ADD", "second ADD"], File.ReadAllLines(Path.Combine(_dir, "calls")));
        JsonNode first = Stdin("first", "ADD");
        Assert.Equal("net", (string?)first["name"]);
        Assert.Equal("1.0.0", (string?)first["cniVersion"]);
        Assert.Equal("br0", (string?)first["bridge"]);
        Assert.Null(first["prevResult"]); // the first plugin of an ADD gets none, whatever the file held
        JsonNode second = Stdin("second", "ADD");
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(Result("eth0", "10.1.0.5/16")), second["prevResult"]), second.ToJsonString());
        Assert.Equal(
            ["CNI_ARGS=IgnoreUnknown=1;K=V", "CNI_COMMAND=ADD", "CNI_CONTAINERID=vm-1", "CNI_IFNAME=eth0", "CNI_NETNS=/var/run/netns/pod", $"CNI_PATH={_dir}"],
            Environment("first", "ADD"));
    }

    [Fact]
    public async Task Delete_runs_the_chain_in_reverse_with_the_add_result_from_0_4_0_on()
    {
        Plugin("first", string.Empty);
        Plugin("second", string.Empty);
        CniResult added = CniResultJson.Parse(Result("eth0", "10.1.0.5/16"));

        await Runner().DeleteAsync(Network("0.4.0", """{"type":"first"}""", """{"type":"second"}"""), Attachment, added);

        Assert.Equal(["second DEL", "first DEL"], File.ReadAllLines(Path.Combine(_dir, "calls")));
        Assert.Equal("0.4.0", (string?)Stdin("first", "DEL")["prevResult"]!["cniVersion"]);
        Assert.Equal("4", (string?)Stdin("first", "DEL")["prevResult"]!["ips"]![0]!["version"]);
    }

    [Fact]
    public async Task Delete_of_a_0_3_1_network_passes_no_previous_result()
    {
        Plugin("first", string.Empty);
        await Runner().DeleteAsync(Network("0.3.1", """{"type":"first"}"""), Attachment, CniResultJson.Parse(Result("eth0", "10.1.0.5/16")));
        Assert.Null(Stdin("first", "DEL")["prevResult"]);
    }

    [Fact]
    public async Task Check_runs_in_order_unless_the_network_disables_it_and_needs_0_4_0()
    {
        Plugin("first", string.Empty);
        CniResult added = CniResultJson.Parse(Result("eth0", "10.1.0.5/16"));

        await Runner().CheckAsync(Network("1.0.0", """{"type":"first"}"""), Attachment, added);
        Assert.NotNull(Stdin("first", "CHECK")["prevResult"]);

        File.Delete(Path.Combine(_dir, "calls"));
        CniNetworkConfig disabled = Network("1.0.0", """{"type":"first"}""") with { DisableCheck = true };
        await Runner().CheckAsync(disabled, Attachment, added);
        Assert.False(File.Exists(Path.Combine(_dir, "calls")));

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => Runner().CheckAsync(Network("0.3.1", """{"type":"first"}"""), Attachment, added));
        Assert.Contains("version 0.3.1 has no CHECK", e.Message);
    }

    [Fact]
    public async Task A_plugin_error_result_becomes_an_exception_naming_the_plugin_and_stopping_the_chain()
    {
        Plugin("first", """echo 'IPAM exhausted' >&2; printf '%s' '{"cniVersion":"1.0.0","code":11,"msg":"no addresses left","details":"10.1.0.0/30"}'; exit 1""");
        Plugin("second", $"printf '%s' '{Result("eth0", "10.1.0.5/16")}'");

        var e = await Assert.ThrowsAsync<CniPluginException>(() => Runner().AddAsync(Network("1.0.0", """{"type":"first"}""", """{"type":"second"}"""), Attachment));

        Assert.Equal("first", e.Plugin);
        Assert.Equal("ADD", e.Command);
        Assert.Equal(new CniError(11, "no addresses left", "10.1.0.0/30"), e.Error);
        Assert.Equal("CNI plugin first ADD (network net): error 11: no addresses left; 10.1.0.0/30 (stderr: IPAM exhausted)", e.Message);
        Assert.Equal(["first ADD"], File.ReadAllLines(Path.Combine(_dir, "calls")));
    }

    [Theory]
    [InlineData("exit 3", "exited with status 3 without an error result")]
    [InlineData("echo garbage; exit 1", "exited with status 1 and printed no error result: garbage")]
    [InlineData("printf '%s' 'not json'", "printed an invalid result: result is not JSON")]
    [InlineData("""printf '%s' '{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5"}]}'""", "printed an invalid result: result.ips[0].address \"10.1.0.5\" is not an address with a prefix length")]
    [InlineData("head -c 2000000 /dev/zero", "printed more than 1048576 bytes on stdout")]
    public async Task A_plugin_that_misbehaves_is_reported_with_what_it_did(string script, string expected)
    {
        Plugin("bad", script);
        var e = await Assert.ThrowsAsync<CniPluginException>(() => Runner().AddAsync(Network("1.0.0", """{"type":"bad"}"""), Attachment));
        Assert.StartsWith("CNI plugin bad ADD (network net): ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task A_plugin_that_hangs_is_killed_at_the_deadline()
    {
        Plugin("slow", "sleep 30");
        var runner = new CniRunner(new CniRunnerOptions([_dir], TimeSpan.FromMilliseconds(500)));
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var e = await Assert.ThrowsAsync<CniPluginException>(() => runner.AddAsync(Network("1.0.0", """{"type":"slow"}"""), Attachment));

        Assert.Contains("did not finish within 0.5 s and was killed", e.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task A_missing_plugin_names_the_search_path()
    {
        var e = await Assert.ThrowsAsync<CniPluginException>(() => Runner().AddAsync(Network("1.0.0", """{"type":"nope"}"""), Attachment));
        Assert.Equal($"CNI plugin nope ADD (network net): no executable named nope in {_dir}", e.Message);
    }

    [Fact]
    public async Task Attachments_are_checked_before_any_plugin_runs()
    {
        Plugin("first", string.Empty);
        await Assert.ThrowsAsync<ArgumentException>(() => Runner().AddAsync(Network("1.0.0", """{"type":"first"}"""), Attachment with { ContainerId = "-bad" }));
        await Assert.ThrowsAsync<ArgumentException>(() => Runner().AddAsync(Network("1.0.0", """{"type":"first"}"""), Attachment with { IfName = "eth 0" }));
        await Assert.ThrowsAsync<ArgumentException>(() => Runner().AddAsync(Network("1.0.0", """{"type":"first"}"""), Attachment with { Args = [new("A;B", "1")] }));
        Assert.False(File.Exists(Path.Combine(_dir, "calls")));
    }

    [Fact]
    public async Task Version_reads_the_supported_versions()
    {
        Plugin("v", """printf '%s' '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'""");
        Assert.Equal(["0.4.0", "1.0.0"], (await Runner().VersionAsync("v")).ToArray());
        Assert.Equal("1.0.0", (string?)Stdin("v", "VERSION")["cniVersion"]);
    }

    private CniRunner Runner() => new(new CniRunnerOptions([_dir]));

    private static CniNetworkConfig Network(string version, params string[] plugins) =>
        CniNetworkConfig.ParseList($$"""{"cniVersion":"{{version}}","name":"net","plugins":[{{string.Join(',', plugins)}}]}""", "test.conflist");

    private static string Result(string name, string address) =>
        $$$"""{"cniVersion":"1.0.0","interfaces":[{"name":"{{{name}}}","sandbox":"/var/run/netns/pod"}],"ips":[{"interface":0,"address":"{{{address}}}"}],"dns":{}}""";

    private void Plugin(string name, string body)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, $"""
            #!/bin/sh
            cat > "{_dir}/{name}.$CNI_COMMAND.stdin"
            env | grep '^CNI_' | sort > "{_dir}/{name}.$CNI_COMMAND.env"
            echo "{name} $CNI_COMMAND" >> "{_dir}/calls"
            {body}
            """);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private JsonNode Stdin(string plugin, string command) => JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, $"{plugin}.{command}.stdin")))!;

    private string[] Environment(string plugin, string command) => File.ReadAllLines(Path.Combine(_dir, $"{plugin}.{command}.env"));
}
