using System.Diagnostics;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Protos.FcControl;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>A private containerd whose runtime configuration turns the jail on (docs/jail.md), with fc-jail and fc-vhost-vsock as published.</summary>
public sealed class JailedContainerd : IAsyncLifetime
{
    public const int UidStart = 910_000;

    public ContainerdFixture Containerd { get; } = new();

    /// <summary>The chroot base of these tests' VMs (one of their own, so no other run's locks or jails mix in).</summary>
    public string ChrootBase => Path.Combine(Containerd.Directory, "jail");

    public string CgroupParent { get; } = "fc-test-jail-" + Guid.NewGuid().ToString("N")[..8];

    public string Launcher { get; private set; } = string.Empty;

    public string VsockDevice { get; private set; } = string.Empty;

    private string _baseConfig = string.Empty;

    public async Task InitializeAsync()
    {
        await Containerd.InitializeAsync();
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        await Containerd.RequireGuestAsync(bound.Token);
        Launcher = await NativeBinary.JailLauncherAsync(bound.Token);
        VsockDevice = await NativeBinary.VsockDeviceAsync(bound.Token);
        _baseConfig = await File.ReadAllTextAsync(Containerd.RuntimeConfigPath, bound.Token);
        WriteConfig(_ => { });
    }

    /// <summary>Writes the runtime configuration with the jail on, after <paramref name="change"/> edits its jail section.</summary>
    public void WriteConfig(Action<JsonObject> change)
    {
        var config = JsonNode.Parse(_baseConfig)!.AsObject();
        var jail = new JsonObject
        {
            ["enabled"] = true,
            ["uid_range"] = new JsonObject { ["start"] = UidStart, ["count"] = 8 },
            ["chroot_base"] = ChrootBase,
            ["cgroup_parent"] = CgroupParent,
            ["launcher_path"] = Launcher,
            ["vsock_device_path"] = VsockDevice,
        };
        change(jail);
        config["jail"] = jail;
        File.WriteAllText(Containerd.RuntimeConfigPath, config.ToJsonString());
    }

    public async Task DisposeAsync()
    {
        await Containerd.DisposeAsync();
        foreach (string controller in new[] { "memory", "cpu", "pids" })
        {
            // A failed test may have left a VM's cgroup (empty once its shim is gone): rmdir, children first.
            string parent = Path.Combine("/sys/fs/cgroup", controller, CgroupParent);
            if (Directory.Exists(parent))
            {
                foreach (string vm in Directory.EnumerateDirectories(parent))
                {
                    Directory.Delete(vm);
                }

                Directory.Delete(parent);
            }
        }
    }
}

/// <summary>
/// The jail through real containerd and QEMU: QEMU and the vsock device run as the VM's own unprivileged uid, in their
/// own pid, mount, ipc and uts namespaces, chrooted, in the VM's cgroup, with no capabilities, no_new_privs and seccomp;
/// containers still run; a killed shim leaves nothing; a bad configuration fails before any VM starts.
/// </summary>
[Trait("Category", "Jail")]
public sealed class JailTests(JailedContainerd jailed, ITestOutputHelper output) : IClassFixture<JailedContainerd>, IAsyncLifetime, IDisposable
{
    private const string Namespace = "fcjail";
    private const string VmIdAnnotation = "aws.firecracker.vm.id";
    private static readonly TimeSpan StateChange = TimeSpan.FromSeconds(60);
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));
    private ContainerdFixture Containerd => jailed.Containerd;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        jailed.WriteConfig(_ => { });
        await Containerd.RemoveLeftoversAsync();
    }

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task A_jailed_VM_runs_QEMU_and_the_vsock_device_unprivileged_and_confined_and_its_containers_still_work()
    {
        const string id = "jail-run";
        const string second = "jail-run-2";
        string jailId = Namespace + "#" + id;
        await RunDetachedAsync(id, null, "sleep", "600");
        try
        {
            string vmDir = Path.Combine(Containerd.ShimBaseDirectory, jailId);
            int qemu = Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
            string root = Path.Combine(jailed.ChrootBase, jailId, "root");
            int device = Assert.Single(JailedProcesses(root), pid => ExeName(pid) == "fc-vhost-vsock");
            foreach (int pid in new[] { qemu, device })
            {
                AssertConfined(pid, root, jailId);
            }

            // The VM directory stays root's and unlistable to the VM's uid, which owns only the directory of its sockets:
            // nothing it does can turn a file the shim writes or chowns into a link elsewhere.
            uint vmUid = uint.Parse(ProcStatus(qemu)["Uid"].Split('\t')[0]);
            Assert.Equal((0u, "711"), await OwnerAndModeAsync(vmDir));
            Assert.Equal((vmUid, "700"), await OwnerAndModeAsync(Path.Combine(vmDir, "vmm")));
            Assert.True(File.Exists(Path.Combine(vmDir, "vmm", "firecracker.vsock")), "the hybrid vsock socket is not in the VM's socket directory");

            // The limit is guest RAM (512 MiB) plus the default overhead (256 MiB).
            string memory = Path.Combine("/sys/fs/cgroup/memory", jailed.CgroupParent, jailId);
            Assert.Equal((512L + 256) << 20, long.Parse(File.ReadAllText(Path.Combine(memory, "memory.limit_in_bytes")).Trim()));

            CommandResult exec = await Containerd.CtrWithInputAsync(Namespace, null, ["task", "exec", "--exec-id", "e1", id, "echo", "exec in a jailed vm"]);
            Assert.True(exec.ExitCode == 0, Containerd.Describe(exec));
            Assert.Equal("exec in a jailed vm\n", exec.Stdout);

            Containerd.NoteTaskId(Namespace, second);
            CommandResult run = await Containerd.CtrWithInputAsync(Namespace, null,
                ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"{VmIdAnnotation}={id}",
                 BusyboxImage.Name, second, "sh", "-c", "echo second container; cat /proc/sys/kernel/hostname >/dev/null"]);
            Assert.True(run.ExitCode == 0, Containerd.Describe(run));
            Assert.Equal("second container\n", run.Stdout);

            await KillAndRemoveAsync(id);
        }
        finally
        {
            await Containerd.RemoveContainerAsync(Namespace, second);
            await Containerd.RemoveContainerAsync(Namespace, id);
        }

        await Containerd.AssertNothingLeftAsync(Namespace, id, id, second);
        await AssertJailClearedAsync(jailId);
    }

    [Fact]
    public async Task A_jailed_VM_on_a_host_TAP_device_owns_the_TAP_and_its_guest_network_is_up_and_reaches_the_host()
    {
        const string vmId = "jail-net";
        const string id = "jail-net-c";
        string jailId = Namespace + "#" + vmId;
        // Our own TAP device and subnet on the host; the guest gets .2 and its default route through the host's .1.
        string tap = "fjt" + Environment.ProcessId.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        string subnet = $"172.30.{Environment.ProcessId % 250}";
        await Containerd.RequireGuestAsync(_timeout.Token);
        await Containerd.ImportBusyboxImageAsync(Namespace);
        await RunIpAsync("tuntap", "add", "dev", tap, "mode", "tap");
        try
        {
            await RunIpAsync("addr", "add", $"{subnet}.1/24", "dev", tap);
            await RunIpAsync("link", "set", tap, "up");
            using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Parse($"{subnet}.1"), 0);
            listener.Start();
            int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;

            await using var shim = await ControlShim.StartAsync(Containerd, Namespace, vmId, _timeout.Token);
            var request = new CreateVMRequest { VMID = vmId, ContainerCount = 1, TimeoutSeconds = 180 };
            request.NetworkInterfaces.Add(new FirecrackerNetworkInterface
            {
                StaticConfig = new StaticNetworkConfiguration
                {
                    MacAddress = "06:00:ac:1e:00:02",
                    HostDevName = tap,
                    IPConfig = new IPConfiguration { PrimaryAddr = $"{subnet}.2/24", GatewayAddr = $"{subnet}.1" },
                },
            });
            try
            {
                await shim.CallAsync("CreateVM", request, CreateVMResponse.Parser);
            }
            catch (FirecrackerContainerd.Ttrpc.TtrpcException e)
            {
                Assert.Fail($"CreateVM {vmId} on {tap}: {e.Message}\n{Containerd.ShimLog()}");
            }

            // fc-jail gave the TAP to the VM's uid (TUNSETOWNER, TUNSETGROUP) before QEMU, unprivileged, attached to it.
            string root = Path.Combine(jailed.ChrootBase, jailId, "root");
            int qemu = Assert.Single(JailedProcesses(root), pid => ExeName(pid)?.StartsWith("qemu-system", StringComparison.Ordinal) == true);
            AssertConfined(qemu, root, jailId);
            string uid = ProcStatus(qemu)["Uid"].Split('\t')[0];
            Assert.Equal(uid, File.ReadAllText($"/sys/class/net/{tap}/owner").Trim());
            Assert.Equal(uid, File.ReadAllText($"/sys/class/net/{tap}/group").Trim());

            // A container on the VM's network (--net-host) sees its interface up with the address, and its bytes reach the host.
            Containerd.NoteTaskId(Namespace, id);
            Task<(string? Line, string From)> received = Task.Run(async () =>
            {
                using System.Net.Sockets.TcpClient client = await listener.AcceptTcpClientAsync(_timeout.Token);
                using var reader = new StreamReader(client.GetStream());
                return (await reader.ReadLineAsync(_timeout.Token), ((System.Net.IPEndPoint)client.Client.RemoteEndPoint!).Address.ToString());
            });
            CommandResult run = await Containerd.CtrWithInputAsync(Namespace, null,
                ["run", "--rm", "--net-host", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"{VmIdAnnotation}={vmId}",
                 BusyboxImage.Name, id, "sh", "-c", $"ip -o -4 addr show; ip -o link show; echo hello from a jailed guest | nc {subnet}.1 {port}"]);
            Assert.True(run.ExitCode == 0, Containerd.Describe(run));
            output.WriteLine(run.Stdout);
            Assert.Contains($"inet {subnet}.2/24", run.Stdout, StringComparison.Ordinal);
            Assert.Matches(@"(?m)^\d+: eth0: <[^>]*\bUP\b", run.Stdout);
            Assert.Equal(("hello from a jailed guest", $"{subnet}.2"), await received.WaitAsync(TimeSpan.FromSeconds(30)));

            await shim.StopVmAsync();
        }
        finally
        {
            await Containerd.RemoveContainerAsync(Namespace, id);
            await ProcessRunner.RunAsync("ip", ["link", "del", tap], TimeSpan.FromSeconds(30));
        }

        await AssertJailClearedAsync(jailId);
        Assert.False(Directory.Exists($"/sys/class/net/{tap}"), $"the test's TAP device {tap} was left");
    }

    [Fact]
    public async Task A_jailed_VM_runs_a_blockfile_snapshot_container_whose_file_QEMU_gets_as_a_descriptor()
    {
        // containerd serves the blockfile snapshotter from 1.7 on; its file stays under containerd's root, outside the jail.
        if (Containerd.Version.StartsWith("1.6", StringComparison.Ordinal))
        {
            return;
        }

        const string id = "jail-blockfile";
        await Containerd.RequireGuestAsync(_timeout.Token);
        await Containerd.ImportBusyboxImageAsync(Namespace, "blockfile");
        Containerd.NoteTaskId(Namespace, id);
        CommandResult run = await Containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "blockfile", BusyboxImage.Name, id,
             "sh", "-c", "echo written in a jailed vm > /kept && cat /kept"]);

        Assert.True(run.ExitCode == 0, Containerd.Describe(run));
        Assert.Equal("written in a jailed vm\n", run.Stdout);
        Assert.Contains($"create {id}: rootfs is the snapshot's block file", Containerd.ContainerdLog, StringComparison.Ordinal);
        await Containerd.RemoveContainerAsync(Namespace, id);
        await Containerd.AssertNothingLeftAsync(Namespace, id, id);
        await AssertJailClearedAsync(Namespace + "#" + id);
    }

    [Fact]
    public async Task A_shim_killed_with_SIGKILL_leaves_no_jail_directory_cgroup_or_held_uid()
    {
        const string id = "jail-shimkill";
        string jailId = Namespace + "#" + id;
        await RunDetachedAsync(id, null, "sleep", "600");
        try
        {
            int shim = Assert.Single(Containerd.ShimProcesses(id));
            Assert.Equal(0, Interop.Kill(shim, 9));
            Assert.True(await Containerd.TaskReachesAsync(Namespace, id, s => s is null or "STOPPED", StateChange),
                $"containerd never saw the task stop\n{Containerd.ShimLog()}");
        }
        finally
        {
            await Containerd.RemoveContainerAsync(Namespace, id);
        }

        await Containerd.AssertNothingLeftAsync(Namespace, id, id);
        await AssertJailClearedAsync(jailId);
    }

    [Theory]
    [InlineData("count0", "jail.uid_range.count is 0")]
    [InlineData("launcher", "/nonexistent/fc-jail, which does not exist")]
    [InlineData("chroot", "cannot make the jail directory")]
    public async Task A_bad_jail_configuration_fails_the_run_with_a_clear_message_before_any_VM_starts(string fault, string message)
    {
        string id = "jail-bad-" + fault;
        jailed.WriteConfig(jail =>
        {
            switch (fault)
            {
                case "count0":
                    jail["uid_range"] = new JsonObject { ["start"] = JailedContainerd.UidStart, ["count"] = 0 };
                    break;
                case "launcher":
                    jail["launcher_path"] = "/nonexistent/fc-jail";
                    break;
                default:
                    // A path below a regular file can never be made.
                    jail["chroot_base"] = "/proc/version/jail";
                    break;
            }
        });
        await Containerd.RequireGuestAsync(_timeout.Token);
        await Containerd.ImportBusyboxImageAsync(Namespace);
        Containerd.NoteTaskId(Namespace, id);
        CommandResult run = await Containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", BusyboxImage.Name, id, "true"]);
        await Containerd.RemoveContainerAsync(Namespace, id);

        Assert.True(run.ExitCode != 0, Containerd.Describe(run));
        Assert.Contains(message, run.Stderr + Containerd.ShimLog(), StringComparison.Ordinal);
        Assert.Empty(ProcessRunner.FindProcesses("qemu-system-x86_64", Path.Combine(Containerd.ShimBaseDirectory, Namespace + "#" + id)));
        await Containerd.AssertNothingLeftAsync(Namespace, id, id);
    }

    [Fact]
    public async Task An_exhausted_uid_range_fails_the_next_VM_with_a_message_naming_the_range()
    {
        const string id = "jail-full";
        string locks = Path.Combine(jailed.ChrootBase, "uids");
        Directory.CreateDirectory(locks);

        // Another holder (this test) takes the only uid of the range.
        jailed.WriteConfig(jail => jail["uid_range"] = new JsonObject { ["start"] = JailedContainerd.UidStart, ["count"] = 1 });
        using (var held = new FirecrackerContainerd.Vmm.Jail.UidAllocator(locks, JailedContainerd.UidStart, 1).Acquire("the test"))
        {
            await Containerd.RequireGuestAsync(_timeout.Token);
            await Containerd.ImportBusyboxImageAsync(Namespace);
            Containerd.NoteTaskId(Namespace, id);
            CommandResult run = await Containerd.CtrWithInputAsync(Namespace, null,
                ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", BusyboxImage.Name, id, "true"]);
            await Containerd.RemoveContainerAsync(Namespace, id);
            Assert.True(run.ExitCode != 0, Containerd.Describe(run));
            Assert.Contains($"every uid of the jail range {JailedContainerd.UidStart}..{JailedContainerd.UidStart}", run.Stderr + Containerd.ShimLog(), StringComparison.Ordinal);
        }

        await Containerd.AssertNothingLeftAsync(Namespace, id, id);
    }

    private static Dictionary<string, string> ProcStatus(int pid) =>
        File.ReadAllLines($"/proc/{pid}/status")
            .Select(line => line.Split(':', 2)).Where(kv => kv.Length == 2).ToDictionary(kv => kv[0], kv => kv[1].Trim());

    private static async Task<(uint Uid, string Mode)> OwnerAndModeAsync(string path)
    {
        CommandResult stat = await ProcessRunner.RunAsync("stat", ["-c", "%u %a", path], TimeSpan.FromSeconds(30));
        Assert.True(stat.ExitCode == 0, $"stat {path}: {stat.Output}");
        string[] parts = stat.Stdout.Trim().Split(' ');
        return (uint.Parse(parts[0]), parts[1]);
    }

    private void AssertConfined(int pid, string root, string jailId)
    {
        Dictionary<string, string> status = ProcStatus(pid);
        string what = $"{ExeName(pid)} pid {pid}:\n{string.Join('\n', status.Select(kv => $"{kv.Key}: {kv.Value}"))}";
        uint uid = uint.Parse(status["Uid"].Split('\t')[0]);
        Assert.True(uid >= JailedContainerd.UidStart && uid < JailedContainerd.UidStart + 8, what);
        Assert.Equal(Enumerable.Repeat(uid.ToString(), 4), status["Uid"].Split('\t'));
        Assert.Equal(Enumerable.Repeat(uid.ToString(), 4), status["Gid"].Split('\t'));
        Assert.True(status["Seccomp"] == "2", what);
        Assert.True(status["NoNewPrivs"] == "1", what);
        Assert.True(status["CapEff"] == "0000000000000000", what);
        Assert.True(status["CapBnd"] == "0000000000000000", what);
        Assert.Equal(root, new DirectoryInfo($"/proc/{pid}/root").LinkTarget);
        foreach (string ns in new[] { "pid", "mnt", "ipc", "uts" })
        {
            Assert.NotEqual(new FileInfo($"/proc/self/ns/{ns}").LinkTarget, new FileInfo($"/proc/{pid}/ns/{ns}").LinkTarget);
        }

        Assert.Contains($":memory:/{jailed.CgroupParent}/{jailId}", File.ReadAllText($"/proc/{pid}/cgroup"), StringComparison.Ordinal);
        Assert.False(File.Exists($"/proc/{pid}/root/etc/passwd"), $"{what}\nthe host's /etc is visible in the jail");
        Assert.False(Directory.Exists($"/proc/{pid}/root/etc"), $"{what}\n/etc exists in the jail");
        output.WriteLine($"{ExeName(pid)} pid {pid}: uid {uid}, root {root}, seccomp {status["Seccomp"]}");
    }

    private async Task AssertJailClearedAsync(string jailId)
    {
        string directory = Path.Combine(jailed.ChrootBase, jailId);
        Assert.True(await Eventually.HoldsAsync(() => !Directory.Exists(directory)), $"the jail directory {directory} was left\n{Containerd.ShimLog()}");
        foreach (string controller in new[] { "memory", "cpu", "pids" })
        {
            string cgroup = Path.Combine("/sys/fs/cgroup", controller, jailed.CgroupParent, jailId);
            Assert.True(await Eventually.HoldsAsync(() => !Directory.Exists(cgroup)), $"the cgroup {cgroup} was left\n{Containerd.ShimLog()}");
        }

        // Every uid of the range is free again: a second allocator takes each one.
        var allocator = new FirecrackerContainerd.Vmm.Jail.UidAllocator(Path.Combine(jailed.ChrootBase, "uids"), JailedContainerd.UidStart, 8);
        var leases = new List<FirecrackerContainerd.Vmm.Jail.UidLease>();
        try
        {
            for (int i = 0; i < 8; i++)
            {
                leases.Add(allocator.Acquire("the test"));
            }
        }
        finally
        {
            leases.ForEach(lease => lease.Dispose());
        }
    }

    private static IEnumerable<int> JailedProcesses(string root) =>
        Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(name => name!.All(char.IsAsciiDigit)).Select(name => int.Parse(name!))
            .Where(pid =>
            {
                try
                {
                    return new DirectoryInfo($"/proc/{pid}/root").LinkTarget == root;
                }
                catch (IOException)
                {
                    return false;
                }
                catch (UnauthorizedAccessException)
                {
                    return false;
                }
            });

    private static string? ExeName(int pid)
    {
        try
        {
            return Path.GetFileName(new FileInfo($"/proc/{pid}/exe").LinkTarget);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static async Task RunIpAsync(params string[] args)
    {
        CommandResult ip = await ProcessRunner.RunAsync("ip", args, TimeSpan.FromSeconds(30));
        Assert.True(ip.ExitCode == 0, $"ip {string.Join(' ', args)}: {ip.Output}");
    }

    private async Task RunDetachedAsync(string id, string? vmId, params string[] command)
    {
        Containerd.NoteTaskId(Namespace, id);
        await Containerd.RequireGuestAsync(_timeout.Token);
        await Containerd.ImportBusyboxImageAsync(Namespace);
        string[] annotation = vmId is null ? [] : ["--annotation", $"{VmIdAnnotation}={vmId}"];
        var clock = Stopwatch.StartNew();
        CommandResult run = await Containerd.CtrWithInputAsync(Namespace, null,
            ["run", "-d", "--runtime", "aws.firecracker", "--snapshotter", "native", .. annotation, BusyboxImage.Name, id, .. command]);
        output.WriteLine($"ctr run -d {id}: exit {run.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(run.ExitCode == 0, Containerd.Describe(run));
        Assert.True(await Containerd.TaskReachesAsync(Namespace, id, "RUNNING", StateChange), $"{id} never ran\n{Containerd.ShimLog()}");
    }

    private async Task KillAndRemoveAsync(string id)
    {
        CommandResult kill = await Containerd.CtrAsync(Namespace, "task", "kill", "--signal", "SIGKILL", id);
        Assert.True(kill.ExitCode == 0, Containerd.Describe(kill));
        Assert.True(await Containerd.TaskReachesAsync(Namespace, id, "STOPPED", StateChange), $"{id} never stopped\n{Containerd.ShimLog()}");
        CommandResult rm = await Containerd.CtrAsync(Namespace, "task", "rm", id);
        Assert.True(rm.ExitCode == 0, Containerd.Describe(rm));
    }
}

/// <summary>
/// fc-jail on its own (no VM): a jail whose starter died before fc-jail could set its parent-death signal never runs its
/// program, because the starter's end of the jail's standard input is gone by then (docs/jail.md).
/// </summary>
[Trait("Category", "Jail")]
public sealed class JailLauncherTests(ITestOutputHelper output)
{
    private const uint Uid = JailedContainerd.UidStart + 100;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Fc_jail_runs_its_program_only_while_its_starter_lives(bool starterStays)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        string launcher = await NativeBinary.RequireAsync("Jail", "jail", "fc-jail", [], bound.Token);
        using var chroot = new TempDir();
        using var work = new TempDir();
        File.SetUnixFileMode(work.Path, (UnixFileMode)0b111_111_111);
        string ran = Path.Combine(work.Path, "ran");
        string errors = Path.Combine(work.Path, "fc-jail.err");
        var program = new FirecrackerContainerd.Vmm.Jail.JailedProgram("/usr/bin/touch", [ran], [], [work.Path], [], [], work.Path);
        var argv = FirecrackerContainerd.Vmm.Jail.JailCommand.Arguments(Path.Combine(chroot.Path, "root"), Uid, "fc-test", [], program);
        string command = string.Join(' ', new[] { launcher }.Concat(argv).Select(arg => "'" + arg + "'"));

        // The starter, bash, starts fc-jail as a process substitution: fc-jail's standard input is a pipe whose write end
        // only bash holds (its descriptor 3). Bash then exits at once (fc-jail is still making its mounts, a few ms) or
        // stays a few seconds, as a shim would.
        string stay = starterStays ? "; sleep 3" : string.Empty;
        using Process starter = Process.Start("/bin/bash", ["-c", $"exec 3> >(exec {command} 2>'{errors}'){stay}"])!;
        await starter.WaitForExitAsync(bound.Token);

        // fc-jail writes its error file when it starts (the redirection) and fills it if it refuses; touch is quick.
        bool settled = await Eventually.HoldsAsync(() => File.Exists(ran) || (File.Exists(errors) && new FileInfo(errors).Length > 0), TimeSpan.FromSeconds(20));
        string said = File.Exists(errors) ? File.ReadAllText(errors) : "(no error file)";
        output.WriteLine($"starter stays: {starterStays}; the program ran: {File.Exists(ran)}; fc-jail said: {said}");
        Assert.True(settled, $"fc-jail neither ran its program nor said why within 20 s: {said}");
        if (starterStays)
        {
            Assert.True(File.Exists(ran), $"fc-jail did not run its program for a live starter: {said}");
        }
        else
        {
            await Task.Delay(TimeSpan.FromSeconds(1), bound.Token);
            Assert.False(File.Exists(ran), $"fc-jail ran its program although its starter was gone: {said}");
            Assert.Contains("died before its parent-death signal was set", said, StringComparison.Ordinal);
        }
    }
}
