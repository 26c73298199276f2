using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
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
/// The VM control API ("Firecracker" ttrpc service) of a shim started for a VM id the way a control daemon
/// starts it: the shim's start verb, then CreateVM, containers through containerd, pause, metadata and StopVM.
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed class ControlApiTests(ContainerdFixture containerd, ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Namespace = "fcctl";
    private const string VmIdAnnotation = "aws.firecracker.vm.id";
    private static readonly TimeSpan StateChange = TimeSpan.FromSeconds(60);
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => containerd.RemoveLeftoversAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task CreateVM_boots_one_guest_that_containers_share_and_that_lives_until_StopVM()
    {
        const string vmId = "ctl-vm";
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId);
        await containerd.RequireGuestAsync(_timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        string[] ids = ["ctl-boot1", "ctl-boot2", "ctl-long"];
        await using var shim = await StartShimAsync(vmId);
        Task<CommandResult>? longRun = null;
        try
        {
            var clock = Stopwatch.StartNew();
            CreateVMResponse created = await shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                MachineCfg = new FirecrackerMachineConfiguration { VcpuCount = 1, MemSizeMib = 256 },
                ContainerCount = 2,
                TimeoutSeconds = 180,
            }, CreateVMResponse.Parser);
            output.WriteLine($"CreateVM: {clock.Elapsed.TotalSeconds:F1} s");
            Assert.Equal(vmId, created.VMID);
            Assert.True(File.Exists(created.SocketPath), $"CreateVM named the VMM socket {created.SocketPath}, which does not exist");
            int qemu = Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
            Assert.Contains("-smp\01\0", await File.ReadAllTextAsync($"/proc/{qemu}/cmdline"), StringComparison.Ordinal);
            Assert.Contains("-m\0256", await File.ReadAllTextAsync($"/proc/{qemu}/cmdline"), StringComparison.Ordinal);

            // A shim creates its VM once, and only the VM it was started for.
            await ControlShim.AssertStatusAsync(StatusCode.AlreadyExists, () => shim.CallAsync("CreateVM", new CreateVMRequest { VMID = vmId }, CreateVMResponse.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("CreateVM", new CreateVMRequest { VMID = "other-vm" }, CreateVMResponse.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("GetVMInfo", new GetVMInfoRequest { VMID = "../etc" }, GetVMInfoResponse.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.NotFound, () => shim.CallAsync("GetVMInfo", new GetVMInfoRequest { VMID = "other-vm" }, GetVMInfoResponse.Parser));

            GetVMInfoResponse info = await shim.CallAsync("GetVMInfo", new GetVMInfoRequest { VMID = vmId }, GetVMInfoResponse.Parser);
            Assert.Equal(vmId, info.VMID);
            Assert.Equal(created.SocketPath, info.SocketPath);
            // Jailed (the default), the VM's sockets lie in the one directory its uid owns.
            Assert.Equal(Path.Combine(vmDir, "vmm", "firecracker.vsock"), info.VSockPath);

            // Two containers, one after the other, run in the same guest, which stays up between them.
            string first = await BootIdAsync(ids[0], vmId);
            Assert.Equal([qemu], ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
            Assert.Equal(shim.Pid, Assert.Single(containerd.ShimProcesses(vmId)));
            string second = await BootIdAsync(ids[1], vmId);
            Assert.Matches("^[0-9a-f-]{36}$", first);
            Assert.Equal(first, second);
            Assert.NotEqual((await File.ReadAllTextAsync("/proc/sys/kernel/random/boot_id")).Trim(), first);
            Assert.Equal([qemu], ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));

            // Metadata: Set replaces, Update merges (null removes), Get returns the document.
            await shim.CallAsync("SetVMMetadata", new SetVMMetadataRequest { VMID = vmId, Metadata = """{"a":{"b":1,"c":2},"x":"y"}""" }, Empty.Parser);
            await shim.CallAsync("UpdateVMMetadata", new UpdateVMMetadataRequest { VMID = vmId, Metadata = """{"a":{"c":null,"d":[3]},"z":true}""" }, Empty.Parser);
            GetVMMetadataResponse metadata = await shim.CallAsync("GetVMMetadata", new GetVMMetadataRequest { VMID = vmId }, GetVMMetadataResponse.Parser);
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"a":{"b":1,"d":[3]},"x":"y","z":true}"""), JsonNode.Parse(metadata.Metadata)), metadata.Metadata);
            await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("SetVMMetadata", new SetVMMetadataRequest { VMID = vmId, Metadata = "{not json" }, Empty.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("UpdateVMMetadata", new UpdateVMMetadataRequest { VMID = vmId, Metadata = "[1]" }, Empty.Parser));

            // A paused VM pauses its containers; resumed, they run again, with the stdio they had.
            containerd.NoteTaskId(Namespace, ids[2]);
            longRun = containerd.CtrWithInputAsync(Namespace, null,
                ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"{VmIdAnnotation}={vmId}",
                 BusyboxImage.Name, ids[2], "sh", "-c", "trap 'echo signalled after the resume; : > /signalled' USR1; echo started; while true; do sleep 0.2; done"]);
            Assert.True(await containerd.TaskReachesAsync(Namespace, ids[2], "RUNNING", StateChange), $"{ids[2]} never ran\n{containerd.ShimLog()}");
            await shim.CallAsync("PauseVM", new PauseVMRequest { VMID = vmId }, Empty.Parser);
            Assert.Equal("PAUSED", await containerd.TaskStatusAsync(Namespace, ids[2]));
            await shim.CallAsync("ResumeVM", new ResumeVMRequest { VMID = vmId }, Empty.Parser);
            Assert.True(await containerd.TaskReachesAsync(Namespace, ids[2], "RUNNING", StateChange), $"{ids[2]} never ran again\n{containerd.ShimLog()}");
            CommandResult exec = await containerd.CtrWithInputAsync(Namespace, null, ["task", "exec", "--exec-id", "boot", ids[2], "cat", "/proc/sys/kernel/random/boot_id"]);
            Assert.True(exec.ExitCode == 0, containerd.Describe(exec));
            Assert.Equal(first, exec.Stdout.Trim());
            CommandResult signal = await containerd.CtrAsync(Namespace, "task", "kill", "--signal", "SIGUSR1", ids[2]);
            Assert.True(signal.ExitCode == 0, containerd.Describe(signal));

            // StopVM stops the VMM at once: wait until the shell has run its trap, whose line is then on its way out.
            int attempt = 0;
            CommandResult handled;
            do
            {
                handled = await containerd.CtrWithInputAsync(Namespace, null, ["task", "exec", "--exec-id", $"trapped-{++attempt}", ids[2], "cat", "/signalled"]);
            }
            while (handled.ExitCode != 0 && attempt < 20);
            Assert.True(handled.ExitCode == 0, $"the container never ran its USR1 trap\n{containerd.Describe(handled)}");

            // StopVM ends the VM under the running container, which reads as killed, and then the shim.
            clock.Restart();
            await shim.CallAsync("StopVM", new StopVMRequest { VMID = vmId, TimeoutSeconds = 2 }, Empty.Parser);
            output.WriteLine($"StopVM: {clock.Elapsed.TotalSeconds:F1} s");
            CommandResult killed = await longRun;
            Assert.True(killed.ExitCode == 137, containerd.Describe(killed));
            // Written after the resume on the stdout connection made before the pause: it survived the pause.
            Assert.Equal("started\nsignalled after the resume\n", killed.Stdout);
            Assert.True(await Eventually.HoldsAsync(() => containerd.ShimProcesses(vmId).Count == 0), $"the shim did not exit after StopVM\n{containerd.ShimLog()}");
        }
        finally
        {
            if (longRun is not null)
            {
                await Task.WhenAny(longRun, Task.Delay(TimeSpan.FromSeconds(30)));
            }

            foreach (string id in ids)
            {
                await containerd.RemoveContainerAsync(Namespace, id);
            }
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, [vmId, .. ids]);
    }

    [Fact]
    public async Task CreateVM_with_a_static_interface_on_a_host_TAP_device_gives_the_guest_a_network_that_reaches_the_host()
    {
        const string vmId = "ctl-net";
        const string id = "ctl-net-c";
        // Our own TAP device and subnet on the host; the guest gets .2 and its default route through the host's .1.
        string tap = "fct" + Environment.ProcessId.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        string subnet = $"172.31.{Environment.ProcessId % 250}";
        await containerd.RequireGuestAsync(_timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        await RunIpAsync("tuntap", "add", "dev", tap, "mode", "tap");
        try
        {
            await RunIpAsync("addr", "add", $"{subnet}.1/24", "dev", tap);
            await RunIpAsync("link", "set", tap, "up");
            using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Parse($"{subnet}.1"), 0);
            listener.Start();
            int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;

            await using var shim = await StartShimAsync(vmId);
            var ip = new IPConfiguration { PrimaryAddr = $"{subnet}.2/24", GatewayAddr = $"{subnet}.1" };
            ip.Nameservers.Add($"{subnet}.1");
            var request = new CreateVMRequest { VMID = vmId, ContainerCount = 1, TimeoutSeconds = 180 };
            request.NetworkInterfaces.Add(new FirecrackerNetworkInterface
            {
                StaticConfig = new StaticNetworkConfiguration { MacAddress = "06:00:ac:1f:00:02", HostDevName = tap, IPConfig = ip },
            });
            await shim.CallAsync("CreateVM", request, CreateVMResponse.Parser);

            // A container on the VM's network (--net-host) sees the address and the route, and its bytes reach the host;
            // the guest's resolv.conf, which ctr binds into such a container, names the nameserver.
            containerd.NoteTaskId(Namespace, id);
            // The host reads one line and closes the connection, which is what ends nc in the guest.
            Task<(string? Line, string From)> received = Task.Run(async () =>
            {
                using System.Net.Sockets.TcpClient client = await listener.AcceptTcpClientAsync(_timeout.Token);
                using var reader = new StreamReader(client.GetStream());
                return (await reader.ReadLineAsync(_timeout.Token), ((System.Net.IPEndPoint)client.Client.RemoteEndPoint!).Address.ToString());
            });
            CommandResult run = await containerd.CtrWithInputAsync(Namespace, null,
                ["run", "--rm", "--net-host", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"{VmIdAnnotation}={vmId}",
                 BusyboxImage.Name, id, "sh", "-c", $"ip -o -4 addr show; ip route; cat /etc/resolv.conf; echo hello from the guest network | nc {subnet}.1 {port}"]);
            Assert.True(run.ExitCode == 0, containerd.Describe(run));
            Assert.Contains($"inet {subnet}.2/24", run.Stdout, StringComparison.Ordinal);
            Assert.Contains($"default via {subnet}.1", run.Stdout, StringComparison.Ordinal);
            Assert.Contains($"nameserver {subnet}.1", run.Stdout, StringComparison.Ordinal);
            Assert.Equal(("hello from the guest network", $"{subnet}.2"), await received.WaitAsync(TimeSpan.FromSeconds(30)));

            await shim.StopVmAsync();
        }
        finally
        {
            await containerd.RemoveContainerAsync(Namespace, id);
            await ProcessRunner.RunAsync("ip", ["link", "del", tap], TimeSpan.FromSeconds(30));
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, vmId, id);
        Assert.False(Directory.Exists($"/sys/class/net/{tap}"), $"the test's TAP device {tap} was left");
    }

    private static async Task RunIpAsync(params string[] args)
    {
        CommandResult ip = await ProcessRunner.RunAsync("ip", args, TimeSpan.FromSeconds(30));
        Assert.True(ip.ExitCode == 0, $"ip {string.Join(' ', args)}: {ip.Output}");
    }

    [Fact]
    public async Task Control_calls_without_a_VM_or_with_unsupported_settings_fail_with_a_status_that_says_why()
    {
        const string vmId = "ctl-novm";
        await containerd.RequireGuestAsync(_timeout.Token);
        await using (var shim = await StartShimAsync(vmId))
        {
            await ControlShim.AssertStatusAsync(StatusCode.NotFound, () => shim.CallAsync("GetVMInfo", new GetVMInfoRequest { VMID = vmId }, GetVMInfoResponse.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.NotFound, () => shim.CallAsync("PauseVM", new PauseVMRequest { VMID = vmId }, Empty.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.NotFound, () => shim.CallAsync("StopVM", new StopVMRequest { VMID = vmId }, Empty.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.NotFound, () => shim.CallAsync("GetVMMetadata", new GetVMMetadataRequest { VMID = vmId }, GetVMMetadataResponse.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("CreateVM", new CreateVMRequest { VMID = "a/b" }, CreateVMResponse.Parser));
            await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("CreateVM", new CreateVMRequest { VMID = "other-vm" }, CreateVMResponse.Parser));

            // A CNI network that is not configured is refused before anything is made.
            string cni = await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                NetworkInterfaces = { new FirecrackerNetworkInterface { CNIConfig = new CNIConfiguration { NetworkName = "fcnet", ConfDir = "/nonexistent/cni" } } },
            }, CreateVMResponse.Parser));
            Assert.Contains("NetworkInterfaces[0].CNIConfig: no CNI network configurations in /nonexistent/cni", cni, StringComparison.Ordinal);
            string noTap = await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                NetworkInterfaces =
                {
                    new FirecrackerNetworkInterface { StaticConfig = new StaticNetworkConfiguration { MacAddress = "06:00:ac:1f:00:02", HostDevName = "lo" } },
                },
            }, CreateVMResponse.Parser));
            Assert.Contains("not a TAP device", noTap, StringComparison.Ordinal);
            string jailer = await ControlShim.AssertStatusAsync(StatusCode.Unimplemented, () => shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                JailerConfig = new JailerConfig(),
            }, CreateVMResponse.Parser));
            Assert.Contains("JailerConfig", jailer, StringComparison.Ordinal);
            string memory = await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                MachineCfg = new FirecrackerMachineConfiguration { MemSizeMib = 64 },
                ContainerCount = 99,
            }, CreateVMResponse.Parser));
            Assert.Contains("MemSizeMib 64", memory, StringComparison.Ordinal);
            Assert.Contains("ContainerCount 99", memory, StringComparison.Ordinal);
            await ControlShim.AssertStatusAsync(StatusCode.NotFound, () => shim.CallAsync("GetBalloonConfig", new GetBalloonConfigRequest { VMID = vmId }, GetBalloonConfigResponse.Parser));

            // Nothing was booted: the shim ends on containerd's Shutdown like any shim without tasks.
            Assert.Empty(ProcessRunner.FindProcesses("qemu-system-x86_64", Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId)));
            await shim.Client.CallAsync(ServiceNames.TaskV2, "Shutdown", new ShutdownRequest { Id = vmId }, Empty.Parser);
            Assert.True(await Eventually.HoldsAsync(() => containerd.ShimProcesses(vmId).Count == 0), "the shim did not exit on Shutdown");
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, vmId);
    }

    /// <summary>Runs <c>ctr run --rm</c> in VM <paramref name="vmId"/> and returns the guest's boot id it printed.</summary>
    private async Task<string> BootIdAsync(string id, string vmId)
    {
        containerd.NoteTaskId(Namespace, id);
        var clock = Stopwatch.StartNew();
        CommandResult run = await containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"{VmIdAnnotation}={vmId}",
             BusyboxImage.Name, id, "cat", "/proc/sys/kernel/random/boot_id"]);
        output.WriteLine($"ctr run {id}: exit {run.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(run.ExitCode == 0, containerd.Describe(run));
        return run.Stdout.Trim();
    }

    private Task<ControlShim> StartShimAsync(string vmId) => ControlShim.StartAsync(containerd, Namespace, vmId, _timeout.Token);
}
