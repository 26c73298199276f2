using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// Which VM a container runs in, decided through real containerd: FIRECRACKER_VM_ID in containerd's environment (which
/// containerd passes to every shim invocation) puts its containers in one VM, served by one shim.
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed class VmIdentityInContainerdTests(ITestOutputHelper output) : IDisposable
{
    private const string Namespace = "fcvmid";
    private static readonly TimeSpan StateChange = TimeSpan.FromSeconds(60);
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(4));

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task VmIdentity_from_FIRECRACKER_VM_ID_in_containerds_environment_gives_two_containers_one_guest_and_one_shim()
    {
        const string vmId = "vm-from-env";
        string[] ids = ["vm-env-1", "vm-env-2"];
        // A containerd of its own: the variable applies to every container it runs.
        var containerd = new ContainerdFixture(new Dictionary<string, string> { ["FIRECRACKER_VM_ID"] = vmId });
        await containerd.InitializeAsync();
        try
        {
            string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId);
            await containerd.RequireGuestAsync(_timeout.Token);
            await containerd.ImportBusyboxImageAsync(Namespace);
            containerd.NoteTaskId(Namespace, vmId); // the shim's socket is keyed by the VM id
            try
            {
                foreach (string id in ids)
                {
                    containerd.NoteTaskId(Namespace, id);
                    CommandResult run = await containerd.CtrWithInputAsync(Namespace, null,
                        ["run", "-d", "--runtime", "aws.firecracker", "--snapshotter", "native", BusyboxImage.Name, id, "sleep", "600"]);
                    Assert.True(run.ExitCode == 0, containerd.Describe(run));
                    Assert.True(await containerd.TaskReachesAsync(Namespace, id, "RUNNING", StateChange), $"{id} never ran\n{containerd.ShimLog()}");
                }

                string[] bootIds = new string[ids.Length];
                for (int i = 0; i < ids.Length; i++)
                {
                    CommandResult exec = await containerd.CtrWithInputAsync(Namespace, null, ["task", "exec", "--exec-id", "boot", ids[i], "cat", "/proc/sys/kernel/random/boot_id"]);
                    Assert.True(exec.ExitCode == 0, containerd.Describe(exec));
                    bootIds[i] = exec.Stdout;
                }

                output.WriteLine($"guest boot ids: {string.Join(", ", bootIds.Select(b => b.Trim()))}");
                Assert.Matches("^[0-9a-f-]{36}\n$", bootIds[0]);
                Assert.Equal(bootIds[0], bootIds[1]);
                Assert.Single(containerd.ShimProcesses());
                Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
                Assert.Equal([Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId)], Directory.GetDirectories(containerd.ShimBaseDirectory));

                foreach (string id in ids)
                {
                    CommandResult kill = await containerd.CtrAsync(Namespace, "task", "kill", "--signal", "SIGKILL", id);
                    Assert.True(kill.ExitCode == 0, containerd.Describe(kill));
                    Assert.True(await containerd.TaskReachesAsync(Namespace, id, "STOPPED", StateChange), $"{id} never stopped\n{containerd.ShimLog()}");
                    await containerd.CtrAsync(Namespace, "task", "rm", id);
                    CommandResult crm = await containerd.CtrAsync(Namespace, "container", "rm", id);
                    Assert.True(crm.ExitCode == 0, containerd.Describe(crm));
                }
            }
            finally
            {
                foreach (string id in ids)
                {
                    await containerd.RemoveContainerAsync(Namespace, id);
                }
            }

            await containerd.AssertNothingLeftAsync(Namespace, vmId, [vmId, .. ids]);
        }
        finally
        {
            await containerd.DisposeAsync();
        }
    }
}
