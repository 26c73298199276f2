using System.Diagnostics;
using System.Text.Json;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Addressing;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// The memory balloon through the VM control API of a shim started for a VM id: a real guest under QEMU gives
/// memory to the balloon and reports its statistics, with Firecracker's rules for what may be asked.
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed class BalloonControlApiTests(ContainerdFixture containerd, ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Namespace = "fcctl";
    private const string VmIdAnnotation = "aws.firecracker.vm.id";
    private const int GuestMib = 256;
    private static readonly TimeSpan BalloonSettles = TimeSpan.FromSeconds(60);
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => containerd.RemoveLeftoversAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task A_balloon_asked_for_at_CreateVM_takes_memory_from_the_guest_and_reports_its_statistics()
    {
        const string vmId = "bal-vm";
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId);
        await containerd.RequireGuestAsync(_timeout.Token);
        await using (var shim = await StartShimAsync(vmId))
        {
            string qemu = await CreateVmAsync(shim, vmDir, new FirecrackerBalloonDevice { AmountMib = 0, DeflateOnOom = false, StatsPollingIntervals = 1 });
            Assert.Contains("virtio-balloon-device,id=balloon,deflate-on-oom=off", qemu, StringComparison.Ordinal);
            FirecrackerBalloonDevice initial = (await GetConfigAsync(shim, vmId)).BalloonConfig;
            Assert.Equal((0L, false, 1L), (initial.AmountMib, initial.DeflateOnOom, initial.StatsPollingIntervals));

            // Targets outside 0 .. memory-1 are refused before QEMU hears of them.
            foreach (long amount in new long[] { -1, GuestMib, long.MaxValue })
            {
                string refused = await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument,
                    () => shim.CallAsync("UpdateBalloon", new UpdateBalloonRequest { VMID = vmId, AmountMib = amount }, Empty.Parser));
                Assert.Contains(vmId, refused, StringComparison.Ordinal);
            }

            var clock = Stopwatch.StartNew();
            await shim.CallAsync("UpdateBalloon", new UpdateBalloonRequest { VMID = vmId, AmountMib = 64 }, Empty.Parser);
            // QEMU keeps the last statistics the guest sent; wait for a sample taken after the inflation, with every counter.
            GetBalloonStatsResponse inflated = await StatsWhenAsync(shim, vmId, s => s.ActualMib == 64 && s.TotalMemory > 0 && s.MinorFaults > 0);
            output.WriteLine($"balloon inflated to 64 MiB with statistics after {clock.Elapsed.TotalSeconds:F1} s: {inflated}");
            Assert.Equal((64L, 64L * 256, 64L * 256), (inflated.TargetMib, inflated.TargetPages, inflated.ActualPages));
            Assert.InRange(inflated.TotalMemory, 1, (long)GuestMib << 20);
            Assert.InRange(inflated.FreeMemory, 1, inflated.TotalMemory);
            Assert.InRange(inflated.AvailableMemory, 1, inflated.TotalMemory);
            Assert.True(inflated.MinorFaults > 0, inflated.ToString());
            Assert.Equal(64, (await GetConfigAsync(shim, vmId)).BalloonConfig.AmountMib);

            // Statistics stay on once they were on at boot; their interval may change.
            string off = await ControlShim.AssertStatusAsync(StatusCode.FailedPrecondition,
                () => shim.CallAsync("UpdateBalloonStats", new UpdateBalloonStatsRequest { VMID = vmId, StatsPollingIntervals = 0 }, Empty.Parser));
            Assert.Contains("off", off, StringComparison.Ordinal);
            await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument,
                () => shim.CallAsync("UpdateBalloonStats", new UpdateBalloonStatsRequest { VMID = vmId, StatsPollingIntervals = -1 }, Empty.Parser));
            await shim.CallAsync("UpdateBalloonStats", new UpdateBalloonStatsRequest { VMID = vmId, StatsPollingIntervals = 2 }, Empty.Parser);
            Assert.Equal(2, (await GetConfigAsync(shim, vmId)).BalloonConfig.StatsPollingIntervals);

            // Back to 0: the guest takes its memory back.
            clock.Restart();
            await shim.CallAsync("UpdateBalloon", new UpdateBalloonRequest { VMID = vmId, AmountMib = 0 }, Empty.Parser);
            await StatsWhenAsync(shim, vmId, s => s.ActualMib == 0 && s.TargetMib == 0);
            output.WriteLine($"balloon deflated to 0 after {clock.Elapsed.TotalSeconds:F1} s");

            await shim.StopVmAsync();
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, vmId);
    }

    [Fact]
    public async Task A_balloon_with_a_target_at_CreateVM_is_given_by_the_guest_as_it_boots()
    {
        const string vmId = "bal-boot";
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId);
        await containerd.RequireGuestAsync(_timeout.Token);
        await using (var shim = await StartShimAsync(vmId))
        {
            string qemu = await CreateVmAsync(shim, vmDir, new FirecrackerBalloonDevice { AmountMib = 32, DeflateOnOom = true, StatsPollingIntervals = 1 });
            Assert.Contains("virtio-balloon-device,id=balloon,deflate-on-oom=on", qemu, StringComparison.Ordinal);
            FirecrackerBalloonDevice config = (await GetConfigAsync(shim, vmId)).BalloonConfig;
            Assert.Equal((32L, true, 1L), (config.AmountMib, config.DeflateOnOom, config.StatsPollingIntervals));

            GetBalloonStatsResponse stats = await StatsWhenAsync(shim, vmId, s => s.ActualMib == 32 && s.TotalMemory > 0);
            Assert.Equal((32L, 32L * 256), (stats.TargetMib, stats.ActualPages));

            await shim.StopVmAsync();
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, vmId);
    }

    [Fact]
    public async Task Without_a_balloon_every_balloon_call_fails_with_FailedPrecondition_naming_the_VM()
    {
        const string vmId = "bal-none";
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId);
        await containerd.RequireGuestAsync(_timeout.Token);
        await using (var shim = await StartShimAsync(vmId))
        {
            // A balloon as large as the memory is refused and boots nothing; the shim stays for the next CreateVM.
            string tooBig = await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                MachineCfg = new FirecrackerMachineConfiguration { MemSizeMib = GuestMib },
                BalloonDevice = new FirecrackerBalloonDevice { AmountMib = GuestMib },
            }, CreateVMResponse.Parser));
            Assert.Contains("BalloonDevice.AmountMib 256", tooBig, StringComparison.Ordinal);
            Assert.Empty(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));

            Assert.DoesNotContain("balloon", await CreateVmAsync(shim, vmDir, balloon: null), StringComparison.Ordinal);

            Func<Task>[] calls =
            [
                () => shim.CallAsync("GetBalloonConfig", new GetBalloonConfigRequest { VMID = vmId }, GetBalloonConfigResponse.Parser),
                () => shim.CallAsync("UpdateBalloon", new UpdateBalloonRequest { VMID = vmId, AmountMib = 16 }, Empty.Parser),
                () => shim.CallAsync("GetBalloonStats", new GetBalloonStatsRequest { VMID = vmId }, GetBalloonStatsResponse.Parser),
                () => shim.CallAsync("UpdateBalloonStats", new UpdateBalloonStatsRequest { VMID = vmId, StatsPollingIntervals = 1 }, Empty.Parser),
            ];
            foreach (Func<Task> call in calls)
            {
                string message = await ControlShim.AssertStatusAsync(StatusCode.FailedPrecondition, call);
                Assert.Contains($"vm \"{vmId}\" has no balloon device: CreateVM did not ask for one", message, StringComparison.Ordinal);
            }

            await shim.StopVmAsync();
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, vmId);
    }

    private static Task<GetBalloonConfigResponse> GetConfigAsync(ControlShim shim, string vmId) =>
        shim.CallAsync("GetBalloonConfig", new GetBalloonConfigRequest { VMID = vmId }, GetBalloonConfigResponse.Parser);

    /// <summary>Asks for the balloon's statistics until <paramref name="reached"/> holds; fails with the last answer after a bounded wait.</summary>
    private async Task<GetBalloonStatsResponse> StatsWhenAsync(ControlShim shim, string vmId, Func<GetBalloonStatsResponse, bool> reached)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            GetBalloonStatsResponse stats = await shim.CallAsync("GetBalloonStats", new GetBalloonStatsRequest { VMID = vmId }, GetBalloonStatsResponse.Parser);
            if (reached(stats))
            {
                return stats;
            }

            Assert.True(clock.Elapsed < BalloonSettles, $"the balloon did not settle within {BalloonSettles.TotalSeconds:0} s; last statistics: {stats}\n{containerd.ShimLog()}");
            await Task.Delay(250, _timeout.Token);
        }
    }

    /// <summary>CreateVM of a <see cref="GuestMib"/> VM with <paramref name="balloon"/> (or none); returns its QEMU's command line.</summary>
    private static async Task<string> CreateVmAsync(ControlShim shim, string vmDir, FirecrackerBalloonDevice? balloon)
    {
        await shim.CallAsync("CreateVM", new CreateVMRequest
        {
            VMID = shim.VmId,
            MachineCfg = new FirecrackerMachineConfiguration { MemSizeMib = GuestMib },
            BalloonDevice = balloon,
            TimeoutSeconds = 180,
        }, CreateVMResponse.Parser);
        int qemu = Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
        return ProcessRunner.CommandLineOf(qemu) ?? throw new InvalidOperationException($"QEMU pid {qemu} of vm {shim.VmId} is gone");
    }

    private Task<ControlShim> StartShimAsync(string vmId) => ControlShim.StartAsync(containerd, Namespace, vmId, _timeout.Token);
}
