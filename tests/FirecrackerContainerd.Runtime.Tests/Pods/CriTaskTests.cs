using System.Text.Json.Nodes;
using FirecrackerContainerd.Runtime.Pods;

namespace FirecrackerContainerd.Runtime.Tests.Pods;

/// <summary>What the CRI plugin's annotations say about a task: sandbox or container, which pod, how big.</summary>
public sealed class CriTaskTests
{
    [Fact]
    public void A_spec_without_CRI_annotations_is_no_CRI_task()
    {
        Assert.Null(CriTask.Of(new JsonObject { ["annotations"] = new JsonObject { ["aws.firecracker.vm.id"] = "vm1" } }));
        Assert.Null(CriTask.Of(new JsonObject { ["ociVersion"] = "1.0.2" }));
    }

    [Fact]
    public void A_sandbox_carries_its_pod_id_and_the_pods_resources()
    {
        CriTask task = CriTask.Of(CriSpecs.Sandbox("pod1", cpuQuota: "150000", memory: "268435456"))!;

        Assert.Equal(new CriTask(CriTaskKind.Sandbox, "pod1", 150000, 100000, 268435456), task);
        Assert.Equal(2, task.Vcpus); // 1.5 CPUs round up
    }

    [Fact]
    public void A_sandbox_without_limits_asks_for_no_size()
    {
        CriTask task = CriTask.Of(CriSpecs.Sandbox("pod1", cpuQuota: "-1", memory: "0"))!;

        Assert.Equal((null, null), (task.CpuQuota, task.MemoryBytes));
        Assert.Null(task.Vcpus);
    }

    [Fact]
    public void A_container_carries_its_pod_id_and_no_resources()
    {
        Assert.Equal(new CriTask(CriTaskKind.Container, "pod1", null, null, null), CriTask.Of(CriSpecs.Container("pod1")));
    }

    [Theory]
    [InlineData("io.kubernetes.cri.container-type", "podvm", "is \"podvm\", neither sandbox nor container")]
    [InlineData("io.kubernetes.cri.sandbox-id", "../x", "annotation io.kubernetes.cri.sandbox-id: identifier \"../x\" must match")]
    [InlineData("io.kubernetes.cri.sandbox-memory", "lots", "annotation io.kubernetes.cri.sandbox-memory is \"lots\", not a number")]
    [InlineData("io.kubernetes.cri.sandbox-cpu-quota", "1e9", "not a number")]
    public void A_malformed_CRI_annotation_is_refused_naming_it(string key, string value, string message)
    {
        JsonObject spec = CriSpecs.Sandbox("pod1");
        spec["annotations"]![key] = value;

        var e = Assert.Throws<InvalidDataException>(() => CriTask.Of(spec));

        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_CRI_task_without_a_sandbox_id_or_with_a_non_string_annotation_is_refused()
    {
        JsonObject noId = CriSpecs.Container("pod1");
        noId["annotations"]!.AsObject().Remove("io.kubernetes.cri.sandbox-id");
        JsonObject number = CriSpecs.Sandbox("pod1");
        number["annotations"]!["io.kubernetes.cri.sandbox-memory"] = 7;

        Assert.Contains("has no io.kubernetes.cri.sandbox-id annotation", Assert.Throws<InvalidDataException>(() => CriTask.Of(noId)).Message, StringComparison.Ordinal);
        Assert.Contains("io.kubernetes.cri.sandbox-memory is not a string", Assert.Throws<InvalidDataException>(() => CriTask.Of(number)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_CRI_task_that_names_a_VM_of_its_own_is_refused_since_its_pod_names_the_VM()
    {
        JsonObject spec = CriSpecs.Container("pod1");
        spec["annotations"]!["aws.firecracker.vm.id"] = "vm1";

        var e = Assert.Throws<InvalidDataException>(() => CriTask.Of(spec));

        Assert.Equal("annotation aws.firecracker.vm.id cannot choose the VM of a Kubernetes pod's container: the pod's VM is its sandbox's (pod1)", e.Message);
    }
}
