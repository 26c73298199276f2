using System.Diagnostics;
using System.Net;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// The whole control chain with real parts: fcctl → firecracker-control → the VM's shim (launched by the
/// daemon) → QEMU, and containerd running containers in that VM through the VM id annotation.
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed class ControlDaemonTests(ContainerdFixture containerd, ITestOutputHelper output) : IAsyncLifetime
{
    private const string Namespace = "fcctl";
    private static readonly TimeSpan StateChange = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("fcctl-").FullName;
    private readonly List<string> _createdVms = [];
    private Process? _daemon;

    private string Socket => Path.Combine(_dir, "control.sock");

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await containerd.RequireGuestAsync(timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        var info = new ProcessStartInfo(await NativeBinary.ControlAsync(timeout.Token))
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            ArgumentList =
            {
                "--socket", Socket, "--grpc-socket", Path.Combine(_dir, "control-grpc.sock"),
                "--containerd-address", containerd.Address, "--state-dir", Path.Combine(_dir, "state"),
                "--shim-binary", Path.Combine(containerd.ShimDirectory, "containerd-shim-aws-firecracker"),
                "--publish-binary", ContainerdFixture.ContainerdBinary, "--runtime-config", containerd.RuntimeConfigPath,
            },
        };

        // The shims the daemon launches get the runtime configuration and temp directory containerd gives the ones it launches.
        info.Environment["TMPDIR"] = containerd.ShimTempDirectory;
        _daemon = Process.Start(info) ?? throw new InvalidOperationException("could not start firecracker-control");
        _daemon.ErrorDataReceived += (_, e) => { if (e.Data is not null) { output.WriteLine($"daemon: {e.Data}"); } };
        _daemon.BeginErrorReadLine();
        Assert.True(await Eventually.HoldsAsync(() => File.Exists(Socket) || _daemon.HasExited), "the daemon never made its socket");
        Assert.False(_daemon.HasExited, $"firecracker-control exited with {(_daemon.HasExited ? _daemon.ExitCode : 0)}");
    }

    public async Task DisposeAsync()
    {
        if (_daemon is { HasExited: false } daemon)
        {
            // A failed test may leave its VM: stop it through the daemon, as a user would, before the daemon goes.
            foreach (string vmId in _createdVms)
            {
                await FcctlAsync("stop-vm", vmId, "--timeout", "2");
            }

            await containerd.RemoveLeftoversAsync();
            _ = Interop.Kill(daemon.Id, Interop.SIGTERM);
            await daemon.WaitForExitAsync();
        }

        _daemon?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Fcctl_creates_a_VM_that_containers_share_and_stops_it_leaving_nothing()
    {
        const string vmId = "ctl-vm";
        _createdVms.Add(vmId);
        // No flag to keep the VM: it lives until stop-vm, so the `ctr run --rm` below, one after the other, share it.
        CommandResult created = await FcctlAsync("create-vm", vmId, "--containers", "2", "--kernel-args", "reboot=k panic=-1 quiet fc.test=ctl-vm");
        Assert.True(created.ExitCode == 0, containerd.Describe(created));
        Assert.Equal(4, (await FcctlAsync("create-vm", vmId)).ExitCode);

        CommandResult list = await FcctlAsync("list");
        Assert.Contains(vmId, list.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await FcctlAsync("info", vmId)).ExitCode);

        // create-vm gave no sizes: the VM has upstream's defaults, 1 vCPU and 128 MiB (the kernel keeps some). Its
        // kernel command line is the one create-vm gave.
        containerd.NoteTaskId(Namespace, "ctl-size");
        CommandResult size = await containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"aws.firecracker.vm.id={vmId}",
             BusyboxImage.Name, "ctl-size", "sh", "-c", "nproc; grep MemTotal /proc/meminfo; cat /proc/cmdline"]);
        Assert.True(size.ExitCode == 0, containerd.Describe(size));
        Assert.Contains(" fc.test=ctl-vm", size.Stdout, StringComparison.Ordinal);
        string[] sizes = size.Stdout.Split((char[])['\n', ' '], StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("1", sizes[0]);
        Assert.InRange(int.Parse(sizes[2], System.Globalization.CultureInfo.InvariantCulture), 64 * 1024, 128 * 1024);

        string first = await BootIdFromContainerAsync("ctl-c1", vmId);
        string second = await BootIdFromContainerAsync("ctl-c2", vmId);
        Assert.Matches("^[0-9a-f-]{36}$", first);
        Assert.Equal(first, second);

        Assert.Equal(0, (await FcctlAsync("metadata", "set", vmId, """{"role":"test","n":1}""")).ExitCode);
        Assert.Equal(0, (await FcctlAsync("metadata", "update", vmId, """{"n":2}""")).ExitCode);
        CommandResult metadata = await FcctlAsync("metadata", "get", vmId);
        Assert.True(metadata.ExitCode == 0, containerd.Describe(metadata));
        using (var json = System.Text.Json.JsonDocument.Parse(metadata.Stdout))
        {
            Assert.Equal("test", json.RootElement.GetProperty("role").GetString());
            Assert.Equal(2, json.RootElement.GetProperty("n").GetInt32());
        }

        // The guest has the merged document too: every container reads it at /run/fc-metadata.
        containerd.NoteTaskId(Namespace, "ctl-c3");
        CommandResult inGuest = await containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"aws.firecracker.vm.id={vmId}",
             BusyboxImage.Name, "ctl-c3", "cat", "/run/fc-metadata/metadata.json"]);
        Assert.True(inGuest.ExitCode == 0, containerd.Describe(inGuest));
        using (var json = System.Text.Json.JsonDocument.Parse(inGuest.Stdout))
        {
            Assert.Equal("test", json.RootElement.GetProperty("role").GetString());
            Assert.Equal(2, json.RootElement.GetProperty("n").GetInt32());
        }

        CommandResult stopped = await FcctlAsync("stop-vm", vmId, "--timeout", "5");
        Assert.True(stopped.ExitCode == 0, containerd.Describe(stopped));
        Assert.Equal(3, (await FcctlAsync("info", vmId)).ExitCode);
        Assert.DoesNotContain(vmId, (await FcctlAsync("list")).Stdout, StringComparison.Ordinal);
        await containerd.AssertNothingLeftAsync(Namespace, vmId, "ctl-size", "ctl-c1", "ctl-c2", "ctl-c3");
    }

    [Fact]
    public async Task Fcctl_pauses_and_resumes_a_VM_under_running_containers_and_stop_vm_ends_them_with_exit_events()
    {
        const string vmId = "ctl-stop";
        string[] ids = ["ctl-s1", "ctl-s2"];
        _createdVms.Add(vmId);
        // 256 MiB: a 128 MiB guest that had given 32 MiB to the balloon lost its agent (and the VM) when a container was created.
        CommandResult created = await FcctlAsync("create-vm", vmId, "--containers", "2", "--mem-mib", "256", "--balloon-mib", "0", "--balloon-stats", "1");
        Assert.True(created.ExitCode == 0, containerd.Describe(created));
        Assert.Equal("Running", await StateAsync(vmId));

        // The balloon fcctl asked for is there and takes a new target.
        Assert.Equal(0, (await FcctlAsync("balloon", "set", vmId, "32")).ExitCode);
        CommandResult balloon = await FcctlAsync("balloon", "get", vmId);
        Assert.True(balloon.ExitCode == 0, containerd.Describe(balloon));
        Assert.Contains("target: 32 MiB", balloon.Stdout, StringComparison.Ordinal);
        Assert.Contains("statistics every: 1 s", balloon.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await FcctlAsync("balloon", "stats", vmId)).ExitCode);
        CommandResult interval = await FcctlAsync("balloon", "stats-interval", vmId, "3");
        Assert.True(interval.ExitCode == 0, containerd.Describe(interval));
        Assert.Contains("statistics every: 3 s", (await FcctlAsync("balloon", "get", vmId)).Stdout, StringComparison.Ordinal);

        using var events = new CtrEvents(containerd, Namespace);
        string[] lines;
        try
        {
            foreach (string id in ids)
            {
                containerd.NoteTaskId(Namespace, id);
                CommandResult run = await containerd.CtrWithInputAsync(Namespace, null,
                    ["run", "-d", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"aws.firecracker.vm.id={vmId}",
                     BusyboxImage.Name, id, "sleep", "600"]);
                Assert.True(run.ExitCode == 0, containerd.Describe(run));
                Assert.True(await containerd.TaskReachesAsync(Namespace, id, "RUNNING", StateChange), $"{id} never ran\n{containerd.ShimLog()}");
            }

            // Paused: the VMM says so (QMP query-status through GetVMInfo) and containerd sees the tasks paused.
            Assert.Equal(0, (await FcctlAsync("pause", vmId)).ExitCode);
            Assert.Equal("Paused", await StateAsync(vmId));
            Assert.Contains("state: paused", (await FcctlAsync("info", vmId)).Stdout, StringComparison.Ordinal);
            foreach (string id in ids)
            {
                Assert.Equal("PAUSED", await containerd.TaskStatusAsync(Namespace, id));
            }

            Assert.Equal(0, (await FcctlAsync("resume", vmId)).ExitCode);
            Assert.Equal("Running", await StateAsync(vmId));
            foreach (string id in ids)
            {
                Assert.True(await containerd.TaskReachesAsync(Namespace, id, "RUNNING", StateChange), $"{id} did not run again\n{containerd.ShimLog()}");
            }

            // Stopped under its running containers: each task exits with SIGKILL's status, and containerd says so.
            CommandResult stopped = await FcctlAsync("stop-vm", vmId, "--timeout", "2");
            Assert.True(stopped.ExitCode == 0, containerd.Describe(stopped));
            Assert.Equal(3, (await FcctlAsync("info", vmId)).ExitCode);
            foreach (string id in ids)
            {
                Assert.True(await containerd.TaskReachesAsync(Namespace, id, s => s is null or "STOPPED", StateChange),
                    $"containerd still says {id} is {await containerd.TaskStatusAsync(Namespace, id)}\n{containerd.ShimLog()}");
            }
        }
        finally
        {
            lines = await events.StopAsync();
        }

        foreach (string id in ids)
        {
            Assert.True(lines.Any(l => l.Contains("/tasks/exit", StringComparison.Ordinal) && l.Contains($"\"{id}\"", StringComparison.Ordinal) &&
                l.Contains("\"exit_status\":137", StringComparison.Ordinal)), $"no /tasks/exit with status 137 for {id} in ctr events:\n{string.Join('\n', lines)}");
            await containerd.RemoveContainerAsync(Namespace, id);
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, ids);
    }

    [Fact]
    public async Task Fcctl_create_vm_cni_puts_the_VM_on_the_network_where_the_host_reaches_it_and_stop_vm_takes_it_off()
    {
        const string vmId = "ctl-cni";
        const string id = "ctl-cni-httpd";
        await using CniTestNetwork network = await CniTestNetwork.CreateAsync(withTap: true);
        string netns = Path.Combine("/var/run/netns", vmId);
        _createdVms.Add(vmId);
        CommandResult created = await FcctlAsync("create-vm", vmId, "--containers", "1", "--cni", network.Name,
            "--cni-conf-dir", network.ConfDir, "--cni-bin-dir", network.BinDir);
        Assert.True(created.ExitCode == 0, containerd.Describe(created));
        IPAddress address = Assert.Single(network.Allocations());
        Assert.True(File.Exists(netns), $"no network namespace {netns}: {network.Describe()}");
        Assert.Single(network.BridgePorts());

        try
        {
            // A server in a container on the VM's network (--net-host), reached from the host at the CNI address.
            containerd.NoteTaskId(Namespace, id);
            CommandResult run = await containerd.CtrWithInputAsync(Namespace, null,
                ["run", "-d", "--net-host", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"aws.firecracker.vm.id={vmId}",
                 BusyboxImage.Name, id, "sh", "-c", "mkdir -p /tmp/www && ip -o -4 addr show > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]);
            Assert.True(run.ExitCode == 0, containerd.Describe(run));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            string? page = null;
            Assert.True(await Eventually.HoldsAsync(() =>
            {
                try
                {
                    page = http.GetStringAsync(new Uri($"http://{address}:8080/")).GetAwaiter().GetResult();
                    return true;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
                catch (TaskCanceledException)
                {
                    return false;
                }
            }, StateChange), $"the host never reached http://{address}:8080/ in the VM: {network.Describe()}\n{containerd.ShimLog()}");
            Assert.Contains($"inet {address}/24", page, StringComparison.Ordinal);

            CommandResult stopped = await FcctlAsync("stop-vm", vmId, "--timeout", "5");
            Assert.True(stopped.ExitCode == 0, containerd.Describe(stopped));
            Assert.True(await containerd.TaskReachesAsync(Namespace, id, s => s is null or "STOPPED", StateChange), $"{id} did not stop with its VM");
        }
        finally
        {
            await containerd.RemoveContainerAsync(Namespace, id);
        }

        // The shim runs CNI DEL and removes the namespace as its VM ends: the veth's bridge port and the address go too.
        Assert.True(await Eventually.HoldsAsync(() => !File.Exists(netns) && network.BridgePorts().Count == 0 && network.Allocations().Count == 0, StateChange),
            $"stop-vm left the VM's network: {network.Describe()}\n{containerd.ShimLog()}");
        await containerd.AssertNothingLeftAsync(Namespace, vmId, id);
    }

    [Fact]
    public async Task Fcctl_create_vm_cni_on_a_network_without_tc_redirect_tap_fails_saying_so_and_leaves_nothing()
    {
        const string vmId = "ctl-cni-notap";
        await using CniTestNetwork network = await CniTestNetwork.CreateAsync(withTap: false);
        _createdVms.Add(vmId);

        CommandResult created = await FcctlAsync("create-vm", vmId, "--cni", network.Name, "--cni-conf-dir", network.ConfDir, "--cni-bin-dir", network.BinDir);

        Assert.True(created.ExitCode != 0 && created.Stderr.Contains("must end with tc-redirect-tap", StringComparison.Ordinal), containerd.Describe(created));
        Assert.True(await Eventually.HoldsAsync(() => containerd.ShimProcesses(vmId).Count == 0), "the shim did not exit after the failed create");
        Assert.False(File.Exists(Path.Combine("/var/run/netns", vmId)), $"the failed create left its namespace: {network.Describe()}");
        Assert.Empty(network.BridgePorts());
        Assert.Empty(network.Allocations());
        await containerd.AssertNothingLeftAsync(Namespace, vmId);
    }

    [Fact]
    public async Task Fcctl_reports_bad_and_unknown_VM_ids_with_their_exit_codes()
    {
        CommandResult bad = await FcctlAsync("create-vm", "bad/id");
        Assert.True(bad.ExitCode == 1 && bad.Stderr.Contains("InvalidArgument", StringComparison.Ordinal), containerd.Describe(bad));
        Assert.Equal(3, (await FcctlAsync("stop-vm", "no-such-vm")).ExitCode);
        Assert.Equal(3, (await FcctlAsync("pause", "no-such-vm")).ExitCode);
    }

    private async Task<string> BootIdFromContainerAsync(string id, string vmId)
    {
        containerd.NoteTaskId(Namespace, id);
        CommandResult run = await containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"aws.firecracker.vm.id={vmId}",
             BusyboxImage.Name, id, "cat", "/proc/sys/kernel/random/boot_id"]);
        Assert.True(run.ExitCode == 0, containerd.Describe(run));
        return run.Stdout.Trim();
    }

    /// <summary>The VM's run state from <c>fcctl info --json</c> (GetVMInfo's State).</summary>
    private async Task<string?> StateAsync(string vmId)
    {
        CommandResult info = await FcctlAsync("info", vmId, "--json");
        Assert.True(info.ExitCode == 0, containerd.Describe(info));
        using var json = System.Text.Json.JsonDocument.Parse(info.Stdout);
        return json.RootElement.GetProperty("State").GetString();
    }

    private async Task<CommandResult> FcctlAsync(params string[] args) =>
        await ProcessRunner.RunAsync(await NativeBinary.FcctlAsync(CancellationToken.None), [.. args, "--socket", Socket, "-n", Namespace], TimeSpan.FromSeconds(120));
}
