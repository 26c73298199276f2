namespace FirecrackerContainerd.IntegrationTests;

/// <summary>containerd as the client: it starts our shim, calls its Task service and deletes it.</summary>
[Collection(PrivateContainerd.Name)]
public class ShimWithContainerdTests(ContainerdFixture containerd) : IAsyncLifetime
{
    private const string Namespace = "fctest";

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => containerd.RemoveLeftoversAsync();

    [Fact]
    public async Task Ctr_run_with_an_invalid_vm_id_fails_with_invalid_vm_id_and_leaves_no_shim_socket_or_address_file()
    {
        const string id = "run1";
        containerd.NoteTaskId(Namespace, id);
        await containerd.ImportBusyboxImageAsync(Namespace);

        var run = await containerd.CtrAsync(
            Namespace, "run", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", "aws.firecracker.vm.id=bad/vm id", BusyboxImage.Name, id, "true");
        await containerd.CtrAsync(Namespace, "container", "rm", id);

        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("invalid vm id", run.Output);
        Assert.Contains($"verb=start ns={Namespace} id={id} ", containerd.InvocationLog);
        Assert.True(await Eventually.HoldsAsync(() => containerd.InvocationLog.Contains($"verb=delete ns={Namespace} id={id} ", StringComparison.Ordinal)),
            $"containerd never ran our delete; shim invocations:\n{containerd.InvocationLog}\ncontainerd log:\n{containerd.ContainerdLog}");
        Assert.True(await Eventually.HoldsAsync(() => containerd.ShimProcesses(id).Count == 0), "a shim process outlived its task");
        Assert.False(File.Exists(containerd.ShimSocketPath(Namespace, id)), "the shim socket was left under /run/containerd/s");
        string bundle = Path.Combine(containerd.StateDirectory, "io.containerd.runtime.v2.task", Namespace, id);
        Assert.True(await Eventually.HoldsAsync(() => !File.Exists(Path.Combine(bundle, "address"))), "the bundle address file was left");
    }
}
