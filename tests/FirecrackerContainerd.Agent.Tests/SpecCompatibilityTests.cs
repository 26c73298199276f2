using System.Text.Json.Nodes;
using FirecrackerContainerd.Agent.Oci;

namespace FirecrackerContainerd.Agent.Tests;

public sealed class SpecCompatibilityTests
{
    private const string Bundle = "/container/c1";

    // What `ctr run` on containerd 2.1 writes, trimmed to one of each kind of entry.
    private const string CtrSpec = """
        {
          "ociVersion": "1.2.1",
          "process": {
            "user": { "uid": 0, "gid": 0, "additionalGids": [0, 10] },
            "args": ["sh", "-c", "echo hi"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": { "bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"] },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
          },
          "root": { "path": "rootfs" },
          "hostname": "",
          "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] }
          ],
          "hooks": {},
          "annotations": {},
          "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "cgroupsPath": "/default/c1",
            "namespaces": [{ "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }, { "type": "network" }],
            "maskedPaths": ["/proc/acpi"],
            "readonlyPaths": ["/proc/bus"]
          }
        }
        """;

    [Fact]
    public void The_spec_ctr_writes_passes_for_both_runtimes()
    {
        Check(CtrSpec, GuestRuntimes.Crun);
        Check(CtrSpec, GuestRuntimes.Runc);
    }

    [Theory]
    [InlineData("1.0.2-dev")]
    [InlineData("1.1.0-rc.1")]
    [InlineData("1.2.1")]
    [InlineData("1.3.0")]
    public void Every_1_x_version_passes(string version)
    {
        Check(With(CtrSpec, s => s["ociVersion"] = version), GuestRuntimes.Crun);
    }

    [Theory]
    [InlineData("2.0.0")]
    [InlineData("1.2")]
    [InlineData("")]
    public void Another_major_version_or_a_malformed_one_is_refused(string version)
    {
        var e = Refused(With(CtrSpec, s => s["ociVersion"] = version), GuestRuntimes.Crun);

        Assert.Equal([$"ociVersion = \"{version}\": the guest runs runtime-spec 1.x"], e.Problems);
    }

    [Fact]
    public void Runtime_spec_1_2_fields_that_crun_implements_pass_with_crun_and_are_named_with_runc()
    {
        string spec = With(CtrSpec, s =>
        {
            s["domainname"] = "example.org";
            s["process"]!["scheduler"] = new JsonObject { ["policy"] = "SCHED_BATCH", ["nice"] = 5 };
            s["process"]!["ioPriority"] = new JsonObject { ["class"] = "IOPRIO_CLASS_IDLE", ["priority"] = 0 };
            s["linux"]!["personality"] = new JsonObject { ["domain"] = "LINUX32" };
            s["linux"]!["timeOffsets"] = new JsonObject { ["boottime"] = new JsonObject { ["secs"] = 86400 } };
            s["linux"]!["resources"]!["cpu"] = new JsonObject { ["quota"] = 50000, ["burst"] = 1000, ["idle"] = 0 };
        });

        Check(spec, GuestRuntimes.Crun);
        var e = Refused(spec, GuestRuntimes.Runc);

        Assert.Equal(
            [
                "process.scheduler = {\"policy\":\"SCHED_BATCH\",\"nice\":5}: the guest's runc does not implement it",
                "process.ioPriority = {\"class\":\"IOPRIO_CLASS_IDLE\",\"priority\":0}: the guest's runc does not implement it",
                "linux.resources.cpu.burst = 1000: the guest's runc does not implement it",
                "linux.resources.cpu.idle = 0: the guest's runc does not implement it",
                "linux.personality = {\"domain\":\"LINUX32\"}: the guest's runc does not implement it",
                "linux.timeOffsets = {\"boottime\":{\"secs\":86400}}: the guest's runc does not implement it",
                "domainname = \"example.org\": the guest's runc does not implement it",
            ],
            e.Problems);
    }

    [Theory]
    [InlineData("linux", "netDevices", """{"eth1":{"name":"net1"}}""", "moves host network devices")]
    [InlineData("linux", "memoryPolicy", """{"mode":"MPOL_BIND","nodes":"0"}""", "NUMA memory policies")]
    [InlineData("linux", "intelRdt", """{"closID":"guaranteed"}""", "resctrl")]
    [InlineData("linux", "mountLabel", "\"system_u:object_r:container_file_t:s0\"", "security-module")]
    [InlineData("process", "apparmorProfile", "\"cri-containerd.apparmor.d\"", "security-module")]
    [InlineData("process", "selinuxLabel", "\"system_u:system_r:container_t:s0\"", "security-module")]
    [InlineData("process", "commandLine", "\"cmd.exe /c dir\"", "Windows")]
    [InlineData("", "windows", """{"layerFolders":["C:\\l"]}""", "another platform")]
    [InlineData("", "vm", """{"hypervisor":{"path":"/usr/bin/qemu"}}""", "already runs inside this VM")]
    public void Fields_no_runtime_in_a_VM_can_honour_are_refused_with_their_reason(string parent, string field, string value, string reason)
    {
        string spec = With(CtrSpec, s => (parent.Length == 0 ? s : s[parent]!.AsObject())[field] = JsonNode.Parse(value));

        var e = Refused(spec, GuestRuntimes.Crun);

        string problem = Assert.Single(e.Problems);
        Assert.StartsWith($"{(parent.Length == 0 ? field : $"{parent}.{field}")} = ", problem, StringComparison.Ordinal);
        Assert.Contains(reason, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Resources_the_guest_has_no_controller_or_device_for_are_refused()
    {
        string spec = With(CtrSpec, s =>
        {
            s["linux"]!["resources"]!["rdma"] = new JsonObject { ["mlx5_0"] = new JsonObject { ["hcaHandles"] = 3 } };
            s["linux"]!["resources"]!["network"] = new JsonObject { ["classID"] = 1048577 };
            s["linux"]!["resources"]!["memory"] = new JsonObject { ["limit"] = 1 << 26, ["kernel"] = 1 << 20 };
        });

        var e = Refused(spec, GuestRuntimes.Crun);

        Assert.Equal(3, e.Problems.Count);
        Assert.Contains(e.Problems, p => p.StartsWith("linux.resources.rdma = ", StringComparison.Ordinal) && p.EndsWith("the VM has no RDMA devices", StringComparison.Ordinal));
        Assert.Contains(e.Problems, p => p.StartsWith("linux.resources.network = ", StringComparison.Ordinal) && p.Contains("cgroup v1", StringComparison.Ordinal));
        Assert.Contains(e.Problems, p => p.StartsWith("linux.resources.memory.kernel = 1048576: ", StringComparison.Ordinal));
    }

    [Fact]
    public void A_hook_and_a_seccomp_agent_socket_are_refused_by_their_paths()
    {
        string spec = With(CtrSpec, s =>
        {
            s["hooks"] = JsonNode.Parse("""{"createRuntime":[{"path":"/usr/local/bin/nerdctl","args":["nerdctl","oci-hook"]}],"poststop":[]}""");
            s["linux"]!["seccomp"] = JsonNode.Parse("""{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/seccomp-agent.sock"}""");
        });

        var e = Refused(spec, GuestRuntimes.Crun);

        Assert.Equal(
            [
                "hooks.createRuntime[0] = {\"path\":\"/usr/local/bin/nerdctl\",\"args\":[\"nerdctl\",\"oci-hook\"]}: OCI hooks run host programs on the container's pid; inside the VM there are neither",
                "linux.seccomp.listenerPath = \"/run/seccomp-agent.sock\": it names a seccomp agent's Unix socket on the host, which the guest cannot reach",
            ],
            e.Problems);
    }

    [Fact]
    public void A_namespace_to_join_must_exist_inside_the_guest()
    {
        string spec = With(CtrSpec, s =>
        {
            s["linux"]!["namespaces"]![0]!["path"] = "/proc/1/ns/pid";
            s["linux"]!["namespaces"]![4]!["path"] = "/var/run/netns/cni-1234";
        });

        var e = Assert.Throws<UnsupportedSpecException>(() => SpecCompatibility.CheckConfig(
            JsonNode.Parse(spec)!.AsObject(), GuestRuntimes.Crun, Bundle, path => path == "/proc/1/ns/pid", "create c1: the OCI spec"));

        Assert.Equal(
            ["linux.namespaces[4].path = \"/var/run/netns/cni-1234\": no such namespace inside the VM; a namespace of the host cannot be joined from there"],
            e.Problems);
    }

    [Fact]
    public void A_field_the_guest_does_not_know_is_refused_wherever_it_is()
    {
        string spec = With(CtrSpec, s =>
        {
            s["linux"]!["futureThing"] = true;
            s["process"]!["user"]!["sid"] = "S-1-5";
            s["mounts"]![0]!["recursive"] = new JsonObject { ["ro"] = true };
            s["linux"]!["sysctl"] = new JsonObject { ["net.ipv4.ip_forward"] = "1" };
        });

        var e = Refused(spec, GuestRuntimes.Crun);

        Assert.Equal(
            [
                "process.user.sid = \"S-1-5\": not a field of the OCI runtime spec (1.0 to 1.3) that the guest knows",
                "mounts[0].recursive = {\"ro\":true}: not a field of the OCI runtime spec (1.0 to 1.3) that the guest knows",
                "linux.futureThing = true: not a field of the OCI runtime spec (1.0 to 1.3) that the guest knows",
            ],
            e.Problems);
    }

    [Fact]
    public void Empty_values_ask_for_nothing_and_pass()
    {
        string spec = With(CtrSpec, s =>
        {
            s["process"]!["apparmorProfile"] = "";
            s["hooks"] = JsonNode.Parse("""{"prestart":[],"poststop":[]}""");
            s["linux"]!["intelRdt"] = null;
            s["linux"]!["netDevices"] = new JsonObject();
            s["linux"]!["futureThing"] = new JsonArray();
        });

        Check(spec, GuestRuntimes.Crun);
    }

    [Fact]
    public void A_field_of_the_wrong_kind_is_refused()
    {
        var e = Refused(With(CtrSpec, s => s["mounts"] = new JsonObject { ["destination"] = "/x" }), GuestRuntimes.Crun);

        Assert.Equal(["mounts = {\"destination\":\"/x\"}: must be an array"], e.Problems);
    }

    [Fact]
    public void A_bind_mount_whose_source_the_guest_lacks_is_refused_and_one_it_has_passes()
    {
        var lookedUp = new List<string>();
        bool ExistsInGuest(string path)
        {
            lookedUp.Add(path);
            return path is "/etc/hosts" or "/container/c1/shared";
        }

        JsonObject spec = JsonNode.Parse(With(CtrSpec, s =>
        {
            JsonArray mounts = s["mounts"]!.AsArray();
            mounts.Add(JsonNode.Parse("""{"destination":"/etc/hosts","type":"bind","source":"/etc/hosts","options":["rbind","ro"]}"""));
            mounts.Add(JsonNode.Parse("""{"destination":"/data","source":"/srv/data","options":["rbind","rw"]}"""));
            mounts.Add(JsonNode.Parse("""{"destination":"/shared","type":"none","source":"shared","options":["bind"]}"""));
        }))!.AsObject();

        var e = Assert.Throws<UnsupportedSpecException>(() =>
            SpecCompatibility.CheckConfig(spec, GuestRuntimes.Crun, Bundle, ExistsInGuest, "create c1: the OCI spec"));

        Assert.Equal(["/etc/hosts", "/srv/data", "/container/c1/shared"], lookedUp);
        Assert.Equal(
            ["mounts[3] (bind /srv/data -> /data): its source does not exist inside the VM; a host path reaches the guest only as a drive mount (CreateVM DriveMounts)"],
            e.Problems);
        Assert.StartsWith("create c1: the OCI spec asks for what the guest cannot honour: mounts[3] (bind /srv/data -> /data)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_exec_process_is_checked_against_the_process_fields()
    {
        JsonObject process = JsonNode.Parse("""{"args":["sh"],"cwd":"/","ioPriority":{"class":"IOPRIO_CLASS_BE","priority":4},"selinuxLabel":"x"}""")!.AsObject();

        var e = Assert.Throws<UnsupportedSpecException>(() => SpecCompatibility.CheckProcess(process, GuestRuntimes.Runc, "exec e1: the process spec"));

        Assert.Equal(2, e.Problems.Count);
        Assert.StartsWith("process.ioPriority = ", e.Problems[0], StringComparison.Ordinal);
        Assert.StartsWith("process.selinuxLabel = \"x\": ", e.Problems[1], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("crun", true)]
    [InlineData("/usr/bin/crun", true)]
    [InlineData("runc", false)]
    [InlineData("/opt/my-runtime", false)]
    public void A_runtime_is_known_by_its_name_and_an_unknown_one_gets_runcs_subset(string name, bool isCrun)
    {
        Assert.Equal(isCrun ? GuestRuntimes.Crun : GuestRuntimes.Runc, SpecCompatibility.RuntimeOf(name));
    }

    [Fact]
    public void A_long_value_is_shortened_in_the_message()
    {
        string label = new('x', 200);
        var e = Refused(With(CtrSpec, s => s["linux"]!["mountLabel"] = label), GuestRuntimes.Crun);

        Assert.StartsWith($"linux.mountLabel = \"{new string('x', 79)}...: ", Assert.Single(e.Problems), StringComparison.Ordinal);
    }

    private static void Check(string spec, GuestRuntimes runtime) =>
        SpecCompatibility.CheckConfig(JsonNode.Parse(spec)!.AsObject(), runtime, Bundle, _ => true, "create c1: the OCI spec");

    private static UnsupportedSpecException Refused(string spec, GuestRuntimes runtime) =>
        Assert.Throws<UnsupportedSpecException>(() => Check(spec, runtime));

    private static string With(string spec, Action<JsonObject> change)
    {
        JsonObject obj = JsonNode.Parse(spec)!.AsObject();
        change(obj);
        return obj.ToJsonString();
    }
}
