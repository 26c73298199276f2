using System.Collections.Immutable;
using System.Net.Sockets;
using System.Text.Json;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;
using Google.Protobuf.WellKnownTypes;
using Xunit.Abstractions;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>A real microVM (QEMU under TCG, our vhost-user vsock device) whose agent answers ttrpc through firecracker.vsock.</summary>
[Trait("Category", "Vm")]
public sealed class AgentInVmTests : IDisposable
{
    private static readonly TimeSpan BootLimit = TimeSpan.FromSeconds(90);
    private readonly string _base = Directory.CreateTempSubdirectory("fc-agentvm-").FullName;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));
    private readonly ITestOutputHelper _output;

    public AgentInVmTests(ITestOutputHelper output)
    {
        _output = output;
    }

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_base, recursive: true);
    }

    /// <summary>Our kernel and Debian's (docs/guest-image.md), each with the agent.</summary>
    [Theory]
    [InlineData(GuestImage.OurKernel)]
    [InlineData(GuestImage.DebianKernel)]
    public async Task The_agent_answers_through_the_hybrid_vsock_and_the_vm_stops_cleanly(string kernel)
    {
        QemuBinary.Require();
        string agent = await AgentBinary.RequireAsync(_timeout.Token);
        GuestImage image = await GuestImage.BuildAsync(agent, kernel, _timeout.Token);
        VmDir vmDir = VmDir.ShimDir(_base, "default", "agent-vm");
        var spec = new MachineSpec(
            "agent-vm",
            new BootSource(image.Kernel, image.Initrd, "reboot=k panic=-1"),
            new MachineConfig(2, 512),
            ImmutableArray<Drive>.Empty,
            new VsockDevice(3, WellKnownNames.FirecrackerVSockName));
        var console = new ConsoleLog();
        var machine = new QemuMachine(spec, vmDir, new QemuOptions(), console);
        try
        {
            await machine.StartAsync(_timeout.Token);
            Assert.Equal(vmDir.FirecrackerVSockPath, machine.VsockHostPath);

            AgentVersion version;
            Socket first = await GuestAgent.DialAsync(vmDir.FirecrackerVSockPath, console, BootLimit, _timeout.Token);

            using (Socket socket = first)
            await using (var client = new TtrpcClient(socket))
            {
                version = await client.CallAsync("Agent", "Version", new Empty(), AgentVersion.Parser, cancellationToken: _timeout.Token);
            }

            string expectedKernel = ReadManifest(image, "kernelRelease");
            Assert.Equal(expectedKernel, version.KernelRelease);
            Assert.NotEqual(File.ReadAllText("/proc/sys/kernel/osrelease").Trim(), version.KernelRelease);
            Assert.Matches("^[0-9a-f-]{36}$", version.BootId);
            Assert.Contains("crun", version.OciRuntimes);

            // Many connections at once, each its own ttrpc client, all reaching the same guest.
            string[] bootIds = await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
            {
                using Socket socket = await GuestAgent.DialAsync(vmDir.FirecrackerVSockPath, console, BootLimit, _timeout.Token);
                await using var client = new TtrpcClient(socket);
                return (await client.CallAsync("Agent", "Version", new Empty(), AgentVersion.Parser, cancellationToken: _timeout.Token)).BootId;
            }));
            Assert.All(bootIds, id => Assert.Equal(version.BootId, id));

            VmExit exit = await machine.StopAsync(TimeSpan.FromSeconds(1), _timeout.Token);
            Assert.Equal(exit, await machine.Exited);
        }
        finally
        {
            await machine.DisposeAsync();
            _output.WriteLine(console.ToString());
        }

        Assert.Empty(Directory.GetFileSystemEntries(vmDir.RootPath));
        Assert.DoesNotContain(System.Diagnostics.Process.GetProcessesByName("qemu-system-x86_64"), p => p.Id == machine.Pid);
    }

    private static string ReadManifest(GuestImage image, string property)
    {
        using JsonDocument manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(image.Directory, "manifest.json")));
        return manifest.RootElement.GetProperty(property).GetString()!;
    }
}
