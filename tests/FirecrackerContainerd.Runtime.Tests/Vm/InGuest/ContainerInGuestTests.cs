using System.Collections.Immutable;
using System.Diagnostics;
using System.Net.Sockets;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;
using FirecrackerContainerd.Vmm.Tests.Qemu;
using Google.Protobuf.WellKnownTypes;
using Xunit.Abstractions;

namespace FirecrackerContainerd.Runtime.Tests.Vm.InGuest;

/// <summary>
/// Containers in a real microVM (QEMU under TCG) driven by the shim's own agent client, without containerd: stub
/// drives patched to rootfs images with QMP, mounted by the agent, run by crun, their stdout read through the
/// hybrid vsock and their exits taken from the agent's event stream.
/// </summary>
[Trait("Category", "ContainerRun")]
public sealed class ContainerInVmTests : IDisposable
{
    private static readonly TimeSpan BootLimit = TimeSpan.FromSeconds(120);
    private readonly string _base = Directory.CreateTempSubdirectory("fc-ctrvm-").FullName;

    // Publishing the agent and building the image can take minutes on a busy machine; the VM part takes less.
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(8));
    private readonly ITestOutputHelper _output;

    public ContainerInVmTests(ITestOutputHelper output)
    {
        _output = output;
    }

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_base, recursive: true);
    }

    [Fact]
    public async Task Two_containers_run_from_patched_drives_in_one_guest()
    {
        QemuBinary.Require();
        string agentBinary = await AgentBinary.RequireAsync(_timeout.Token);
        GuestImage image = await GuestImage.BuildAsync(agentBinary, _timeout.Token);
        string drives = Directory.CreateDirectory(Path.Combine(_base, "drives")).FullName;
        StubDrive.Create(Path.Combine(drives, "stub0"), "stub0");
        StubDrive.Create(Path.Combine(drives, "stub1"), "stub1");
        await BusyboxRootfs.CreateAsync(Path.Combine(drives, "c1.ext4"), "marker of c1\n", _timeout.Token);
        await BusyboxRootfs.CreateAsync(Path.Combine(drives, "c2.ext4"), "marker of c2\n", _timeout.Token);

        VmDir vmDir = VmDir.ShimDir(Directory.CreateDirectory(Path.Combine(_base, "vms")).FullName, "default", "ctr-vm");
        var spec = new MachineSpec(
            "ctr-vm",
            new BootSource(image.Kernel, image.Initrd, "reboot=k panic=-1 fc.debug=1"),
            new MachineConfig(2, 512),
            [new Drive("stub0", Path.Combine(drives, "stub0")), new Drive("stub1", Path.Combine(drives, "stub1"))],
            new VsockDevice(3, WellKnownNames.FirecrackerVSockName));
        var console = new ConsoleLog();
        var machine = new QemuMachine(spec, vmDir, new QemuOptions(), new TraceLogger(console));
        try
        {
            var clock = Stopwatch.StartNew();
            await machine.StartAsync(_timeout.Token);
            Socket socket = await GuestAgent.DialAsync(vmDir.FirecrackerVSockPath, console, BootLimit, _timeout.Token);

            await using (var agent = new AgentClient(new TtrpcClient(socket)))
            {
                AgentVersion version = await agent.VersionAsync(_timeout.Token);
                _output.WriteLine($"boot to agent ready: {clock.ElapsedMilliseconds} ms");
                Trace($"agent ready after {clock.ElapsedMilliseconds} ms");
                Assert.Matches("^[0-9a-f-]{36}$", version.BootId);
                string hostKernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
                Assert.NotEqual(hostKernel, version.KernelRelease);
                var containers = new GuestContainerRunner(agent, vmDir.FirecrackerVSockPath);

                ContainerRun c1 = await RunFromDriveAsync(machine, agent, containers, "stub0", Path.Combine(drives, "c1.ext4"), "c1", 11001);
                ContainerRun c2 = await RunFromDriveAsync(machine, agent, containers, "stub1", Path.Combine(drives, "c2.ext4"), "c2", 11004);

                Assert.Equal(0u, c1.ExitStatus);
                Assert.Equal(0u, c2.ExitStatus);
                Assert.Equal(["marker of c1", version.KernelRelease, version.BootId], Lines(c1.Stdout));
                Assert.Equal(["marker of c2", version.KernelRelease, version.BootId], Lines(c2.Stdout));
            }

            VmExit exit = await machine.StopAsync(TimeSpan.FromSeconds(1), _timeout.Token);
            Assert.Equal(exit, await machine.Exited);
        }
        finally
        {
            await machine.DisposeAsync();
            _output.WriteLine(console.ToString());
        }

        Assert.Empty(Directory.GetFileSystemEntries(vmDir.RootPath));
        Assert.DoesNotContain(Process.GetProcessesByName("qemu-system-x86_64"), p => p.Id == machine.Pid);
    }

    private async Task<ContainerRun> RunFromDriveAsync(
        QemuMachine machine, AgentClient agent, GuestContainerRunner containers, string driveId, string rootfsImage, string id, uint stdoutPort)
    {
        var clock = Stopwatch.StartNew();
        Trace($"{id}: patching {driveId}");
        await machine.PatchDriveAsync(driveId, rootfsImage, _timeout.Token);
        Trace($"{id}: patched, mounting");
        long patched = clock.ElapsedMilliseconds;
        await agent.MountDriveAsync(driveId, BundleDir.VMBundleDir(id).RootfsPath, _timeout.Token);
        long mounted = clock.ElapsedMilliseconds;
        Trace($"{id}: mounted, running");
        ContainerRun run = await containers.RunAsync(
            id, driveId, ["sh", "-c", "cat /marker; uname -r; cat /proc/sys/kernel/random/boot_id"], stdoutPort, _timeout.Token);
        long ran = clock.ElapsedMilliseconds;
        Trace($"{id}: ran: {run}");
        await agent.UnmountDriveAsync(driveId, _timeout.Token);
        _output.WriteLine($"{id}: patch {patched} ms, mount {mounted - patched} ms, create+start+run+wait+delete {ran - mounted} ms, pid {run.Pid}");
        Assert.Equal(rootfsImage, machine.Spec.Drives.Single(d => d.DriveId == driveId).HostPath);
        return run;
    }

    private static void Trace(string line)
    {
        if (Environment.GetEnvironmentVariable("FC_VM_TRACE") is { Length: > 0 } file)
        {
            File.AppendAllText(file, $"{DateTime.UtcNow:HH:mm:ss.fff} {line}\n");
        }
    }

    /// <summary>Keeps the guest console for the test output and, with FC_VM_TRACE set, appends it to that file as it comes.</summary>
    private sealed class TraceLogger(ConsoleLog inner) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
            Trace(formatter(state, exception));
        }
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}
