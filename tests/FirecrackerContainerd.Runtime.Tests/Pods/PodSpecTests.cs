using System.Text.Json.Nodes;
using FirecrackerContainerd.Runtime.Pods;

namespace FirecrackerContainerd.Runtime.Tests.Pods;

/// <summary>A CRI spec rewritten for the pod's VM: guest paths for the pod's shared things, host files copied in, the rest refused.</summary>
public sealed class PodSpecTests : IDisposable
{
    private readonly TempDir _host = new();

    public void Dispose() => _host.Dispose();

    [Fact]
    public void A_sandbox_drops_its_host_network_namespace_and_the_hosts_AppArmor_profile_and_gets_the_guests_shm()
    {
        JsonObject spec = CriSpecs.Sandbox("pod1");
        string before = spec.ToJsonString();

        PodSpecPlan plan = PodSpec.Plan("pod1", spec, CriTask.Of(spec)!);

        Assert.Equal(before, spec.ToJsonString()); // the input is left as it was
        Assert.Equal(["pid", "ipc", "uts", "mount"], Namespaces(plan.Spec).Select(n => n.Type));
        Assert.Null(plan.Spec["process"]!["apparmorProfile"]);
        Assert.Equal("/run/fc-pod/pod1/shm", Mount(plan.Spec, "/dev/shm")["source"]!.GetValue<string>());
        Assert.Equal(("proc", "proc"), (Mount(plan.Spec, "/proc")["type"]!.GetValue<string>(), Mount(plan.Spec, "/proc")["source"]!.GetValue<string>()));
        Assert.Empty(plan.Files);
        Assert.Empty(plan.Volumes);
    }

    [Fact]
    public void A_container_keeps_the_sandboxs_namespaces_but_the_network_and_keeps_an_AppArmor_profile_it_chose()
    {
        JsonObject spec = CriSpecs.Container("pod1", sandboxPid: 4321);
        spec["process"]!["apparmorProfile"] = "my-profile";

        PodSpecPlan plan = PodSpec.Plan("c1", spec, CriTask.Of(spec)!);

        Assert.Equal([("pid", null), ("ipc", "/proc/4321/ns/ipc"), ("uts", "/proc/4321/ns/uts"), ("mount", null)], Namespaces(plan.Spec));
        Assert.Equal("my-profile", plan.Spec["process"]!["apparmorProfile"]!.GetValue<string>());
    }

    [Fact]
    public void Host_files_are_copied_under_a_name_of_their_path_and_emptyDir_volumes_become_guest_directories()
    {
        string hosts = Write("hosts", "127.0.0.1 localhost\n");
        string resolv = Write("resolv.conf", "nameserver 10.0.0.10\n");
        string emptyDir = Path.Combine(_host.Path, "pods/uid/volumes/kubernetes.io~empty-dir/cache");
        Directory.CreateDirectory(emptyDir);
        JsonObject spec = CriSpecs.Container("pod1", 101,
            CriSpecs.Bind("/etc/hosts", hosts), CriSpecs.Bind("/etc/resolv.conf", resolv), CriSpecs.Bind("/cache", emptyDir), CriSpecs.Bind("/cache2", emptyDir + "/"));

        PodSpecPlan plan = PodSpec.Plan("c1", spec, CriTask.Of(spec)!);

        Assert.Equal(2, plan.Files.Count);
        PodFile hostsFile = Assert.Single(plan.Files, f => f.HostPath == hosts);
        Assert.Matches("^f-[0-9a-f]{16}$", hostsFile.Name);
        Assert.Equal($"/run/fc-pod/pod1/files/{hostsFile.Name}", Mount(plan.Spec, "/etc/hosts")["source"]!.GetValue<string>());
        Assert.NotEqual(hostsFile.Name, Assert.Single(plan.Files, f => f.HostPath == resolv).Name);
        Assert.Equal(["cache"], plan.Volumes);
        Assert.Equal("/run/fc-pod/pod1/volumes/cache", Mount(plan.Spec, "/cache")["source"]!.GetValue<string>());
        Assert.Equal("/run/fc-pod/pod1/volumes/cache", Mount(plan.Spec, "/cache2")["source"]!.GetValue<string>());
    }

    [Fact]
    public void Every_host_path_the_VM_cannot_serve_is_refused_and_named_in_one_error()
    {
        string big = _host.File("big", (int)PodSpec.MaxFileBytes + 1);
        string dir = Directory.CreateDirectory(Path.Combine(_host.Path, "data")).FullName;
        JsonObject spec = CriSpecs.Container("pod1", 101,
            CriSpecs.Bind("/big", big), CriSpecs.Bind("/data", dir), CriSpecs.Bind("/null", "/dev/null"), CriSpecs.Bind("/gone", Path.Combine(_host.Path, "gone")),
            CriSpecs.Bind("/bad", Path.Combine(_host.Path, "volumes/kubernetes.io~empty-dir/..")));

        var e = Assert.Throws<PodMountException>(() => PodSpec.Plan("c1", spec, CriTask.Of(spec)!));

        Assert.Equal(5, e.Problems.Count);
        Assert.StartsWith("create c1: ", e.Message, StringComparison.Ordinal);
        Assert.Contains($"mount /big (file {big}): {PodSpec.MaxFileBytes + 1} bytes, more than the {PodSpec.MaxFileBytes}", e.Message, StringComparison.Ordinal);
        Assert.Contains($"mount /data (bind {dir}): a host directory cannot be served inside the VM", e.Message, StringComparison.Ordinal);
        Assert.Contains("mount /null (bind /dev/null): not a regular file", e.Message, StringComparison.Ordinal);
        Assert.Contains("mount /gone (bind ", e.Message, StringComparison.Ordinal);
        Assert.Contains("no such file or directory on the host", e.Message, StringComparison.Ordinal);
        Assert.Contains("is not a volume name the guest accepts", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_pods_network_sysctls_move_out_of_the_spec_for_the_agent_and_the_others_stay()
    {
        JsonObject spec = CriSpecs.Sandbox("pod1");
        spec["linux"]!["sysctl"] = new JsonObject
        {
            ["net.ipv4.ip_unprivileged_port_start"] = "0",
            ["net.ipv4.ping_group_range"] = "0 2147483647",
            ["kernel.shm_rmid_forced"] = "1",
        };

        PodSpecPlan plan = PodSpec.Plan("pod1", spec, CriTask.Of(spec)!);

        Assert.Equal(["net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range"], plan.NetworkSysctls.Keys);
        Assert.Equal("0 2147483647", plan.NetworkSysctls["net.ipv4.ping_group_range"]);
        Assert.Equal("""{"kernel.shm_rmid_forced":"1"}""", plan.Spec["linux"]!["sysctl"]!.ToJsonString());
    }

    [Fact]
    public void A_host_network_sandbox_that_names_a_hostname_gets_a_UTS_namespace_of_its_own_in_the_guest()
    {
        JsonObject spec = CriSpecs.Sandbox("pod1", netns: null);
        JsonArray namespaces = spec["linux"]!["namespaces"]!.AsArray();
        namespaces.Remove(namespaces.OfType<JsonObject>().Single(n => n["type"]!.GetValue<string>() == "uts"));

        PodSpecPlan plan = PodSpec.Plan("pod1", spec, CriTask.Of(spec)!);

        Assert.Equal(["pid", "ipc", "mount", "uts"], Namespaces(plan.Spec).Select(n => n.Type));
        Assert.Equal(["pid", "ipc", "uts", "mount"], Namespaces(PodSpec.Plan("pod1", CriSpecs.Sandbox("pod1", netns: null), CriTask.Of(spec)!).Spec).Select(n => n.Type));
    }

    [Fact]
    public void A_mount_that_is_no_bind_is_left_to_the_guest()
    {
        JsonObject spec = CriSpecs.Container("pod1", 101,
            new JsonObject { ["destination"] = "/tmp", ["type"] = "tmpfs", ["source"] = "tmpfs", ["options"] = new JsonArray("nosuid") });

        PodSpecPlan plan = PodSpec.Plan("c1", spec, CriTask.Of(spec)!);

        Assert.Equal("tmpfs", Mount(plan.Spec, "/tmp")["source"]!.GetValue<string>());
    }

    private string Write(string name, string content)
    {
        string path = _host.Combine(name);
        File.WriteAllText(path, content);
        return path;
    }

    private static JsonObject Mount(JsonObject spec, string destination) =>
        spec["mounts"]!.AsArray().OfType<JsonObject>().Single(m => m["destination"]!.GetValue<string>() == destination);

    private static List<(string Type, string? Path)> Namespaces(JsonObject spec) =>
        [.. spec["linux"]!["namespaces"]!.AsArray().OfType<JsonObject>().Select(n => (n["type"]!.GetValue<string>(), n["path"]?.GetValue<string>()))];
}
