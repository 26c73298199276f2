using System.Text.Json.Nodes;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Tests.Fakes;
using FirecrackerContainerd.Ttrpc;

namespace FirecrackerContainerd.Runtime.Tests.Pods;

/// <summary>A pod through the Task service: the sandbox boots the pod's VM, its containers join it, what cannot run is refused before any VM work.</summary>
public sealed class PodTaskServiceTests : IAsyncDisposable
{
    private readonly FakeVmShim _shim = new();
    private readonly TempDir _host = new();

    public async ValueTask DisposeAsync()
    {
        await _shim.DisposeAsync();
        _host.Dispose();
    }

    [Fact]
    public async Task A_sandbox_boots_the_pods_VM_sized_for_the_pod_and_the_agent_gets_the_guest_spec()
    {
        await _shim.Service.CreateAsync(Request("sb1", CriSpecs.Sandbox("sb1", netns: null, cpuQuota: "200000", memory: "536870912")), FakeVmShim.Call());

        Assert.Equal(["sb1"], _shim.Booted);
        var (config, _) = Assert.Single(_shim.BootedWith);
        Assert.Equal((2, 512 + _shim.Config.PodMemoryOverheadMib), (config.VcpuCount, config.MemSizeMib));
        Assert.Equal(["PreparePod sb1", "MountDrive stub0 /container/sb1/rootfs ext4", "Create sb1"], _shim.Agent.Calls);
        JsonObject guest = JsonNode.Parse(_shim.Agent.Specs["sb1"])!.AsObject();
        Assert.Equal("/run/fc-pod/sb1/shm", guest["mounts"]![1]!["source"]!.GetValue<string>());
        Assert.Null(guest["process"]!["apparmorProfile"]);
    }

    [Fact]
    public async Task A_container_joins_its_sandboxs_VM_with_its_files_and_volumes_put_in_first()
    {
        string hosts = _host.Combine("hosts");
        await File.WriteAllTextAsync(hosts, "10.88.0.5 web\n");
        string emptyDir = _host.Combine("volumes", "kubernetes.io~empty-dir", "scratch");
        Directory.CreateDirectory(emptyDir);
        await _shim.Service.CreateAsync(Request("sb1", CriSpecs.Sandbox("sb1", netns: null)), FakeVmShim.Call());

        await _shim.Service.CreateAsync(
            Request("app", CriSpecs.Container("sb1", 101, CriSpecs.Bind("/etc/hosts", hosts), CriSpecs.Bind("/scratch", emptyDir))), FakeVmShim.Call());

        Assert.Equal(["sb1"], _shim.Booted);
        string file = Assert.Single(_shim.Agent.PodFiles).Key;
        Assert.Equal("10.88.0.5 web\n", System.Text.Encoding.UTF8.GetString(_shim.Agent.PodFiles[file]));
        Assert.Equal(
            ["PreparePod sb1", $"PutPodFile sb1 {file}", "EnsurePodVolume sb1 scratch", "MountDrive stub1 /container/app/rootfs ext4", "Create app"],
            _shim.Agent.Calls.Skip(3));
        Assert.Contains($"\"/run/fc-pod/sb1/files/{file}\"", _shim.Agent.Specs["app"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_container_whose_sandbox_VM_is_not_running_is_refused_and_boots_nothing()
    {
        var e = await Assert.ThrowsAsync<TtrpcException>(() => _shim.Service.CreateAsync(Request("app", CriSpecs.Container("sb1")), FakeVmShim.Call()));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal("create app: the VM of pod sandbox sb1 is not running in this shim", e.Message);
        Assert.Empty(_shim.Booted);
    }

    [Fact]
    public async Task A_task_with_a_malformed_annotation_or_an_unservable_mount_is_InvalidArgument_before_any_VM_work()
    {
        JsonObject malformed = CriSpecs.Sandbox("sb1", memory: "a lot");
        JsonObject directory = CriSpecs.Container("sb1", 101, CriSpecs.Bind("/data", _host.Path));

        var bad = await Assert.ThrowsAsync<TtrpcException>(() => _shim.Service.CreateAsync(Request("sb1", malformed), FakeVmShim.Call()));
        await _shim.Service.CreateAsync(Request("sb1", CriSpecs.Sandbox("sb1", netns: null)), FakeVmShim.Call());
        int calls = _shim.Agent.Calls.Count;
        var unservable = await Assert.ThrowsAsync<TtrpcException>(() => _shim.Service.CreateAsync(Request("app", directory), FakeVmShim.Call()));

        Assert.Equal((StatusCode.InvalidArgument, StatusCode.InvalidArgument), (bad.StatusCode, unservable.StatusCode));
        Assert.Contains("annotation io.kubernetes.cri.sandbox-memory is \"a lot\", not a number", bad.Message, StringComparison.Ordinal);
        Assert.Equal($"create app: mount /data (bind {_host.Path}): a host directory cannot be served inside the VM (an emptyDir volume, /dev/shm and host files up to 1 MiB can)", unservable.Message);
        Assert.Equal(calls, _shim.Agent.Calls.Count);
        Assert.Equal(["sb1"], _shim.Booted);
    }

    [Fact]
    public async Task A_pods_network_namespace_that_is_gone_fails_the_sandbox_with_FailedPrecondition_and_boots_nothing()
    {
        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            _shim.Service.CreateAsync(Request("sb1", CriSpecs.Sandbox("sb1", netns: "/var/run/netns/fcn-gone")), FakeVmShim.Call()));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal("create sb1: the pod's network namespace /var/run/netns/fcn-gone does not exist", e.Message);
        Assert.Empty(_shim.Booted);
    }

    private CreateTaskRequest Request(string id, JsonObject spec) => _shim.CreateRequestWithSpec(id, spec.ToJsonString());
}
