using System.Diagnostics;
using FirecrackerContainerd.Protos.FcControl;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// A guest that runs out of memory: the OOM killer takes container processes, never the agent, so the VM and its
/// containers stay manageable.
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed class GuestMemoryTests(ContainerdFixture containerd, ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Namespace = "fcmemory";
    private const string VmIdAnnotation = "aws.firecracker.vm.id";
    private const string VmId = "mem-vm";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => containerd.RemoveLeftoversAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task A_container_that_exhausts_a_128_MiB_guest_loses_processes_to_the_OOM_killer_and_the_VM_lives_on()
    {
        string[] ids = ["mem-probe", "mem-hog", "mem-after"];
        await containerd.RequireGuestAsync(_timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        await using var shim = await ControlShim.StartAsync(containerd, Namespace, VmId, _timeout.Token);
        try
        {
            await shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = VmId,
                MachineCfg = new FirecrackerMachineConfiguration { VcpuCount = 1, MemSizeMib = 128 },
                ContainerCount = 1,
                TimeoutSeconds = 180,
            }, CreateVMResponse.Parser);

            // The agent is bigger than any one of the hog's processes, so without its protection it would be the
            // OOM killer's first choice (the largest resident set wins).
            CommandResult probe = await RunAsync(ids[0], ["--with-ns", "pid:/proc/1/ns/pid"],
                "for p in /proc/[0-9]*; do if grep -q '[f]c-agent' $p/cmdline 2>/dev/null; then grep VmRSS $p/status; fi; done; grep MemAvailable /proc/meminfo");
            output.WriteLine(probe.Output);
            Assert.True(probe.ExitCode == 0, containerd.Describe(probe));
            Assert.Matches(@"VmRSS:\s+\d+ kB", probe.Stdout);
            long agentKib = long.Parse(System.Text.RegularExpressions.Regex.Match(probe.Stdout, @"VmRSS:\s+(\d+)").Groups[1].Value);
            Assert.True(agentKib > 5 * 1024, $"the agent's resident set ({agentKib} KiB) is not above one hog process (4 MiB and a shell's 1)");

            // 32 processes each hold 4 MiB (dd's buffer, filled from /dev/zero, held while dd blocks on a pipe
            // nobody reads): 128 MiB in a guest with far less free.
            using var events = new CtrEvents(containerd, Namespace);
            var clock = Stopwatch.StartNew();
            CommandResult hog = await RunAsync(ids[1], [],
                "i=0; while [ $i -lt 32 ]; do (dd if=/dev/zero bs=4M count=1 2>/dev/null | sleep 15) & i=$((i+1)); done; sleep 20; echo survived");
            output.WriteLine($"hog: exit {hog.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s\n{hog.Output}");
            Assert.True(hog.ExitCode == 0, containerd.Describe(hog));
            Assert.Equal("survived\n", hog.Stdout);

            CommandResult after = await RunAsync(ids[2], [], "echo alive");
            Assert.True(after.ExitCode == 0, containerd.Describe(after));
            Assert.Equal("alive\n", after.Stdout);
            string[] seen = await events.StopAsync();
            Assert.True(seen.Any(line => line.Contains("/tasks/oom", StringComparison.Ordinal) && line.Contains(ids[1], StringComparison.Ordinal)),
                $"no /tasks/oom for {ids[1]} in ctr events:\n{string.Join('\n', seen)}");

            await shim.StopVmAsync();
        }
        finally
        {
            foreach (string id in ids)
            {
                await containerd.RemoveContainerAsync(Namespace, id);
            }
        }

        await containerd.AssertNothingLeftAsync(Namespace, VmId, ids);
    }

    /// <summary>`ctr run --rm` of a busybox shell script in VM <see cref="VmId"/>.</summary>
    private Task<CommandResult> RunAsync(string id, string[] options, string script)
    {
        containerd.NoteTaskId(Namespace, id);
        return containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"{VmIdAnnotation}={VmId}",
             .. options, BusyboxImage.Name, id, "sh", "-c", script]);
    }
}
