using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Shim.Arguments;

namespace FirecrackerContainerd.Runtime.Tests.Vm;

/// <summary>Which VM a task belongs to: the annotation, else FIRECRACKER_VM_ID, else the task id, for every user alike.</summary>
public sealed class VmIdentityTests : IDisposable
{
    private readonly string _bundle = Directory.CreateTempSubdirectory("fcvmid-").FullName;

    public void Dispose() => Directory.Delete(_bundle, recursive: true);

    [Fact]
    public void VmIdentity_is_the_annotation_even_when_FIRECRACKER_VM_ID_is_set()
    {
        WriteConfig("""{"annotations":{"aws.firecracker.vm.id":"annotated-vm"}}""");

        Assert.Equal("annotated-vm", Identity("environment-vm").Resolve(_bundle, "task1"));
    }

    [Fact]
    public void A_task_of_a_Kubernetes_pod_runs_in_its_sandboxs_VM_whatever_else_names_one()
    {
        WriteConfig("""{"annotations":{"io.kubernetes.cri.sandbox-id":"sandbox1","aws.firecracker.vm.id":"annotated-vm"}}""");

        Assert.Equal("sandbox1", Identity("environment-vm").Resolve(_bundle, "container1"));
    }

    [Fact]
    public void VmIdentity_is_FIRECRACKER_VM_ID_when_the_bundle_names_no_VM()
    {
        WriteConfig("""{"annotations":{"other":"x"}}""");

        Assert.Equal("environment-vm", Identity("environment-vm").Resolve(_bundle, "task1"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void VmIdentity_is_the_task_id_when_neither_the_bundle_nor_the_environment_names_a_VM(string? variable)
    {
        WriteConfig("""{"ociVersion":"1.0.2"}""");

        Assert.Equal("task1", Identity(variable).Resolve(_bundle, "task1"));
    }

    [Theory]
    [InlineData("""{"annotations":{"aws.firecracker.vm.id":"../etc"}}""", null, "invalid vm id: identifier \"../etc\" must match")]
    [InlineData("""{"annotations":{"aws.firecracker.vm.id":""}}""", null, "invalid vm id: identifier must not be empty")]
    [InlineData("""{"ociVersion":"1.0.2"}""", "a/b", "invalid vm id: identifier \"a/b\" must match")]
    [InlineData("""{"annotations":{"aws.firecracker.vm.id":7}}""", null, "failed to parse Annotations section of OCI config file")]
    public void VmIdentity_refuses_a_VM_id_that_could_not_name_a_directory_saying_why(string config, string? variable, string message)
    {
        WriteConfig(config);

        var e = Assert.Throws<InvalidVmIdException>(() => Identity(variable).Resolve(_bundle, "task1"));

        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void VmIdentity_refuses_a_bundle_without_a_config_naming_the_file()
    {
        var e = Assert.Throws<InvalidVmIdException>(() => Identity(null).Resolve(_bundle, "task1"));

        Assert.Contains(Path.Combine(_bundle, "config.json"), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void VmIdentity_socket_key_of_a_task_whose_VM_id_is_refused_is_the_task_id_so_its_Create_can_say_why()
    {
        WriteConfig("""{"annotations":{"aws.firecracker.vm.id":"../etc"}}""");

        Assert.Equal("task1", Identity("environment-vm").SocketKey(_bundle, "task1"));
    }

    [Fact]
    public void VmIdentity_gives_the_shim_socket_and_the_delete_verb_the_VM_named_by_FIRECRACKER_VM_ID()
    {
        // The bug this type ends: the socket key ignored the variable, the VM directory did not, so two tasks got two
        // shims sharing one VM directory.
        WriteConfig("""{"ociVersion":"1.0.2"}""");
        var runtime = new FirecrackerShimRuntime(Identity("shared-vm"));

        string key1 = runtime.SocketKey(Arguments("task1"), _bundle);
        string key2 = runtime.SocketKey(Arguments("task2"), _bundle);

        Assert.Equal(("shared-vm", "shared-vm"), (key1, key2));
        Assert.Equal(key1, Identity("shared-vm").Resolve(_bundle, "task1"));
    }

    private static VmIdentity Identity(string? vmIdVariable) =>
        new(name => name == "FIRECRACKER_VM_ID" ? vmIdVariable : null);

    private static ShimArguments Arguments(string id) =>
        new("ns1", "/run/containerd/containerd.sock", "/usr/bin/containerd", id, "", "", false, ShimVerb.Start);

    private void WriteConfig(string json) => File.WriteAllText(Path.Combine(_bundle, "config.json"), json);
}
