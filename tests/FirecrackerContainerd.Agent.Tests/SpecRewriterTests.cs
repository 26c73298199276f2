using System.Text;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Agent.Oci;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Agent.Tests;

public sealed class SpecRewriterTests
{
    private const string Metadata = "/run/fc-metadata";
    private static readonly BundleDir Bundle = BundleDir.VMBundleDir("c1");

    [Fact]
    public void The_root_is_the_bundles_rootfs_whatever_the_host_said()
    {
        JsonObject config = RewriteConfig(Spec(s => s["root"] = new JsonObject { ["path"] = "/var/lib/containerd/c1/rootfs", ["readonly"] = true }));

        Assert.Equal("rootfs", (string?)config["root"]!["path"]);
        Assert.True((bool?)config["root"]!["readonly"]);
    }

    [Fact]
    public void A_spec_without_a_root_gets_the_bundles_rootfs()
    {
        JsonObject config = RewriteConfig(Spec(s => s.Remove("root")));

        Assert.Equal("rootfs", (string?)config["root"]!["path"]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_process_gets_the_requests_terminal_flag(bool terminal)
    {
        JsonObject config = RewriteConfig(Spec(s => s["process"]!["terminal"] = !terminal), terminal);

        Assert.Equal(terminal, (bool?)config["process"]!["terminal"]);
    }

    [Fact]
    public void The_metadata_directory_is_mounted_read_only_at_its_own_path()
    {
        JsonObject config = RewriteConfig(Spec(_ => { }));

        JsonObject mount = Assert.IsType<JsonObject>(config["mounts"]!.AsArray()[^1]);
        Assert.Equal(Metadata, (string?)mount["destination"]);
        Assert.Equal(Metadata, (string?)mount["source"]);
        Assert.Equal("bind", (string?)mount["type"]);
        Assert.Equal(["rbind", "ro", "nosuid", "nodev", "noexec"], mount["options"]!.AsArray().Select(o => (string?)o));
    }

    [Fact]
    public void A_spec_that_mounts_something_at_the_metadata_directory_keeps_its_own_mount()
    {
        JsonObject config = RewriteConfig(Spec(s => s["mounts"] = new JsonArray(
            new JsonObject { ["destination"] = Metadata, ["type"] = "tmpfs", ["source"] = "tmpfs" })));

        JsonObject mount = Assert.IsType<JsonObject>(Assert.Single(config["mounts"]!.AsArray()));
        Assert.Equal("tmpfs", (string?)mount["type"]);
    }

    [Fact]
    public void Without_a_metadata_directory_no_mount_is_added()
    {
        var rewriter = new SpecRewriter(GuestRuntimes.Crun, metadataDirectory: null, _ => true);

        JsonObject config = Parse(rewriter.RewriteConfig(Spec(_ => { }), terminal: false, Bundle, "create c1: the OCI spec"));

        Assert.Equal("/proc", (string?)Assert.Single(config["mounts"]!.AsArray())!["destination"]);
    }

    [Fact]
    public void A_relative_bind_source_is_looked_up_in_the_bundle()
    {
        var asked = new List<string>();
        var rewriter = new SpecRewriter(GuestRuntimes.Crun, Metadata, path =>
        {
            asked.Add(path);
            return true;
        });
        byte[] spec = Spec(s => s["mounts"]!.AsArray().Add(new JsonObject { ["destination"] = "/data", ["type"] = "bind", ["source"] = "data", ["options"] = new JsonArray("rbind") }));

        rewriter.RewriteConfig(spec, terminal: false, Bundle, "create c1: the OCI spec");

        Assert.Equal(["/container/c1/data"], asked);
    }

    [Theory]
    [InlineData("{not json", "create c1: the OCI spec is not JSON")]
    [InlineData("[]", "create c1: the OCI spec is not a JSON object")]
    [InlineData("null", "create c1: the OCI spec is not a JSON object")]
    [InlineData("""{"ociVersion":"1.0.2"}""", "create c1: the OCI spec has no process object")]
    public void A_spec_that_is_no_object_or_has_no_process_is_refused_naming_the_create(string spec, string message)
    {
        var e = Assert.Throws<InvalidSpecException>(() => RewriteConfig(Encoding.UTF8.GetBytes(spec)));

        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_spec_asking_for_what_the_guest_cannot_honour_is_refused_before_anything_is_rewritten()
    {
        var e = Assert.Throws<UnsupportedSpecException>(() => RewriteConfig(Spec(s => s["hooks"] = JsonNode.Parse("""{"prestart":[{"path":"/bin/true"}]}"""))));

        Assert.StartsWith("create c1: the OCI spec asks for what the guest cannot honour: hooks", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void An_exec_process_gets_the_requests_terminal_flag_and_keeps_the_rest(bool terminal)
    {
        var rewriter = new SpecRewriter(GuestRuntimes.Crun, Metadata, _ => true);
        JsonObject process = AgentProcess.ProcessJson("sh", "-c", "echo hi");
        process["terminal"] = !terminal;

        JsonObject rewritten = Parse(Encoding.UTF8.GetBytes(rewriter.RewriteProcess(Encoding.UTF8.GetBytes(process.ToJsonString()), terminal, "exec e1: the process spec")));

        process["terminal"] = terminal;
        Assert.True(JsonNode.DeepEquals(process, rewritten));
    }

    [Fact]
    public void An_exec_process_with_a_field_the_guest_does_not_know_is_refused_naming_it()
    {
        var rewriter = new SpecRewriter(GuestRuntimes.Crun, Metadata, _ => true);
        JsonObject process = AgentProcess.ProcessJson("true");
        process["sandbox"] = "yes";

        var e = Assert.Throws<UnsupportedSpecException>(() => rewriter.RewriteProcess(Encoding.UTF8.GetBytes(process.ToJsonString()), false, "exec e1: the process spec"));

        Assert.Equal("process.sandbox = \"yes\": not a field of the OCI runtime spec (1.0 to 1.3) that the guest knows", Assert.Single(e.Problems));
    }

    [Fact]
    public void An_exec_process_that_is_not_json_is_refused_naming_the_exec()
    {
        var rewriter = new SpecRewriter(GuestRuntimes.Crun, Metadata, _ => true);

        var e = Assert.Throws<InvalidSpecException>(() => rewriter.RewriteProcess("ls -l"u8, false, "exec e1: the process spec"));

        Assert.StartsWith("exec e1: the process spec is not JSON", e.Message, StringComparison.Ordinal);
    }

    private static JsonObject RewriteConfig(byte[] spec, bool terminal = false) =>
        Parse(new SpecRewriter(GuestRuntimes.Crun, Metadata, _ => true).RewriteConfig(spec, terminal, Bundle, "create c1: the OCI spec"));

    private static byte[] Spec(Action<JsonObject> change)
    {
        JsonObject spec = Parse(AgentProcess.SpecJson("true"));
        spec["mounts"] = new JsonArray(new JsonObject { ["destination"] = "/proc", ["type"] = "proc", ["source"] = "proc" });
        change(spec);
        return Encoding.UTF8.GetBytes(spec.ToJsonString());
    }

    private static JsonObject Parse(byte[] json) => JsonNode.Parse(json)!.AsObject();
}
