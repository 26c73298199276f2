using System.Diagnostics;
using System.Globalization;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;
using FirecrackerContainerd.Vmm.Tests.Qemu;
using Xunit.Abstractions;

namespace FirecrackerContainerd.Runtime.Tests.Vm.InGuest;

/// <summary>
/// A guest whose balloon has free page reporting gives the host back the memory a container touched once it is freed:
/// without it QEMU keeps every page the guest ever touched.
/// </summary>
[Trait("Category", "ContainerRun")]
public sealed class FreePageReportingTests : IDisposable
{
    private const int GuestMib = 256;

    /// <summary>What the container holds: dd's buffer, filled from /dev/zero.</summary>
    private const int HeldMib = 128;

    private static readonly TimeSpan BootLimit = TimeSpan.FromSeconds(120);

    /// <summary>The guest reports free memory 2 s after it was freed; a busy host makes the rest slower.</summary>
    private static readonly TimeSpan GivenBackWithin = TimeSpan.FromSeconds(60);

    private readonly string _base = Directory.CreateTempSubdirectory("fc-fpr-").FullName;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(8));
    private readonly ITestOutputHelper _output;

    public FreePageReportingTests(ITestOutputHelper output)
    {
        _output = output;
    }

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_base, recursive: true);
    }

    [Fact]
    public async Task A_guest_with_free_page_reporting_gives_back_the_memory_a_container_freed()
    {
        QemuBinary.Require();
        string agentBinary = await AgentBinary.RequireAsync(_timeout.Token);
        GuestImage image = await GuestImage.BuildAsync(agentBinary, _timeout.Token);
        string drives = Directory.CreateDirectory(Path.Combine(_base, "drives")).FullName;
        StubDrive.Create(Path.Combine(drives, "stub0"), "stub0");
        await BusyboxRootfs.CreateAsync(Path.Combine(drives, "c.ext4"), "marker\n", _timeout.Token);
        VmDir vmDir = VmDir.ShimDir(Directory.CreateDirectory(Path.Combine(_base, "vms")).FullName, "default", "fpr-vm");
        var spec = new MachineSpec(
            "fpr-vm",
            new BootSource(image.Kernel, image.Initrd, "reboot=k panic=-1 quiet"),
            new MachineConfig(2, GuestMib),
            [new Drive("stub0", Path.Combine(drives, "stub0"))],
            new VsockDevice(3, WellKnownNames.FirecrackerVSockName),
            Balloon: new BalloonDevice(0, DeflateOnOom: false, FreePageReporting: true));
        var console = new ConsoleLog();
        var machine = new QemuMachine(spec, vmDir, new QemuOptions(), console);
        try
        {
            await machine.StartAsync(_timeout.Token);
            int qemu = machine.Pid!.Value;
            await using var agent = new AgentClient(new TtrpcClient(await GuestAgent.DialAsync(vmDir.FirecrackerVSockPath, console, BootLimit, _timeout.Token)));
            await agent.VersionAsync(_timeout.Token);
            await machine.PatchDriveAsync("stub0", Path.Combine(drives, "c.ext4"), _timeout.Token);
            await agent.MountDriveAsync("stub0", BundleDir.VMBundleDir("fpr").RootfsPath, _timeout.Token);
            await Task.Delay(TimeSpan.FromSeconds(5), _timeout.Token);
            double before = GuestMemoryMib(qemu);

            // dd holds its buffer while it waits on a pipe nobody reads, until sleep ends and takes the pipe with it.
            using var watching = CancellationTokenSource.CreateLinkedTokenSource(_timeout.Token);
            Task<double> peak = PeakAsync(qemu, watching.Token);
            ContainerRun run = await new GuestContainerRunner(agent, vmDir.FirecrackerVSockPath).RunAsync(
                "fpr", "stub0", ["sh", "-c", $"dd if=/dev/zero bs={HeldMib}M count=1 2>/dev/null | sleep 4; echo held"], 11001, _timeout.Token);
            await watching.CancelAsync();
            double held = await peak;
            Assert.Equal((0u, "held\n"), (run.ExitStatus, run.Stdout));

            var clock = Stopwatch.StartNew();
            double after = GuestMemoryMib(qemu);
            while (after > before + (HeldMib / 4) && clock.Elapsed < GivenBackWithin)
            {
                await Task.Delay(500, _timeout.Token);
                after = GuestMemoryMib(qemu);
            }

            _output.WriteLine($"guest memory QEMU holds: {before:0} MiB before, {held:0} MiB with the container's {HeldMib} MiB, {after:0} MiB {clock.Elapsed.TotalSeconds:0.0} s after it exited");
            Assert.True(held - before >= HeldMib * 3 / 4, $"the container's memory never reached the host: {before:0} MiB before, {held:0} MiB at most while it held {HeldMib} MiB");
            Assert.True(after <= before + (HeldMib / 4), $"the guest kept the freed memory: {before:0} MiB before, {held:0} MiB held, still {after:0} MiB {GivenBackWithin.TotalSeconds:0} s after");
            await agent.UnmountDriveAsync("stub0", _timeout.Token);
        }
        finally
        {
            await machine.DisposeAsync();
            _output.WriteLine(console.ToString());
        }
    }

    // The most guest memory QEMU held until cancelled, sampled every 100 ms.
    private static async Task<double> PeakAsync(int qemu, CancellationToken cancellationToken)
    {
        double peak = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            peak = Math.Max(peak, GuestMemoryMib(qemu));
            try
            {
                await Task.Delay(100, cancellationToken);
            }
            catch (OperationCanceledException)
            {
            }
        }

        return Math.Max(peak, GuestMemoryMib(qemu));
    }

    // Guest RAM is one shared memfd that QEMU maps once: its resident shared memory is the guest memory it holds.
    private static double GuestMemoryMib(int pid)
    {
        string line = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("RssShmem:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }
}
