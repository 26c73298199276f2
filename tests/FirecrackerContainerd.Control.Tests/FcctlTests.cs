using FirecrackerContainerd.Protos.FcControl;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>fcctl's entry point against the daemon with fake shims: parsing, output and exit codes.</summary>
public sealed class FcctlTests : IAsyncLifetime
{
    private readonly ControlHarness _h = new();

    public Task InitializeAsync() => _h.InitializeAsync();

    public Task DisposeAsync() => _h.DisposeAsync();

    [Fact]
    public async Task Create_info_list_and_stop_print_for_people_and_exit_0_and_a_duplicate_create_exits_4()
    {
        var create = await _h.FcctlAsync("create-vm", "vm1", "--vcpus", "2", "--mem-mib", "256", "--namespace", "ns1");
        Assert.Equal((0, "created vm vm1\n  socket: /run/vm/firecracker.sock\n", ""), create);
        Assert.Equal(["CreateVM ns1 vm1 vcpus=2 exit=False"], _h.Shims["ns1/vm1"].Calls.ToArray());

        var duplicate = await _h.FcctlAsync("create-vm", "vm1", "-n", "ns1");
        Assert.Equal(4, duplicate.Code);
        Assert.StartsWith("fcctl: AlreadyExists: ", duplicate.Stderr, StringComparison.Ordinal);

        var list = await _h.FcctlAsync("list", "-n", "ns1");
        Assert.Equal(0, list.Code);
        Assert.Matches(@"^VMID\s+SHIM PID\s+SOCKET\nvm1\s+\d+\s+/run/containerd/s/[0-9a-f]{64}\n$", list.Stdout);

        var info = await _h.FcctlAsync("info", "vm1", "-n", "ns1", "--json");
        Assert.Equal(0, info.Code);
        Assert.Contains("\"VSockPath\": \"/run/vm/firecracker.vsock\"", info.Stdout, StringComparison.Ordinal);

        Assert.Equal((0, "stopped vm vm1\n", ""), await _h.FcctlAsync("stop-vm", "vm1", "--timeout", "5", "-n", "ns1"));
        Assert.Equal((0, "no vms\n", ""), await _h.FcctlAsync("list", "-n", "ns1"));
    }

    [Fact]
    public async Task Create_vm_keeps_the_VM_after_its_last_container_unless_asked_to_end_it_with_it()
    {
        Assert.Equal(0, (await _h.FcctlAsync("create-vm", "vm1")).Code);
        Assert.Equal(0, (await _h.FcctlAsync("create-vm", "vm2", "--exit-after-tasks")).Code);

        // ExitAfterAllTasksDeleted, the API's own default (false) unless the flag asks for it.
        Assert.Equal(["CreateVM default vm1 vcpus=0 exit=False"], _h.Shims["default/vm1"].Calls.ToArray());
        Assert.Equal(["CreateVM default vm2 vcpus=0 exit=True"], _h.Shims["default/vm2"].Calls.ToArray());
    }

    [Fact]
    public async Task Create_vm_with_progress_prints_the_seconds_waited_on_stderr_and_the_answer_on_stdout()
    {
        _h.ShimCreateDelay = TimeSpan.FromSeconds(2.5);
        var create = await _h.FcctlAsync("create-vm", "vm1", "--progress");
        Assert.Equal((0, "created vm vm1\n  socket: /run/vm/firecracker.sock\n"), (create.Code, create.Stdout));
        Assert.StartsWith("creating vm vm1 ... 1 s\n", create.Stderr, StringComparison.Ordinal);
        Assert.All(create.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), line => Assert.Matches(@"^creating vm vm1 \.\.\. \d s$", line));
    }

    [Fact]
    public async Task Metadata_set_then_get_round_trips_the_document()
    {
        await _h.StartShimAsync("default", "vm1");
        Assert.Equal((0, "metadata set for vm vm1\n", ""), await _h.FcctlAsync("metadata", "set", "vm1", "{\"k\":\"v\"}"));
        Assert.Equal((0, "{\"k\":\"v\"}\n", ""), await _h.FcctlAsync("metadata", "get", "vm1"));
        Assert.Equal(0, (await _h.FcctlAsync("pause", "vm1")).Code);
        Assert.Equal(0, (await _h.FcctlAsync("resume", "vm1")).Code);
    }

    [Fact]
    public async Task Create_vm_device_options_become_network_interfaces_drive_mounts_and_a_balloon()
    {
        var create = await _h.FcctlAsync("create-vm", "vm1",
            "--net", "tap0,06:00:ac:10:00:02,172.16.0.2/24,172.16.0.1,1.1.1.1",
            "--net", "tap1,06:00:ac:10:00:03",
            "--drive", "/srv/data.ext4:/data", "--drive", "scratch.img:/scratch:xfs:rw",
            "--balloon-mib", "32", "--balloon-stats", "5");
        Assert.Equal(0, create.Code);
        CreateVMRequest sent = _h.Shims["default/vm1"].LastCreate!;

        Assert.Equal(2, sent.NetworkInterfaces.Count);
        StaticNetworkConfiguration first = sent.NetworkInterfaces[0].StaticConfig;
        Assert.Equal(("tap0", "06:00:ac:10:00:02", "172.16.0.2/24", "172.16.0.1"), (first.HostDevName, first.MacAddress, first.IPConfig.PrimaryAddr, first.IPConfig.GatewayAddr));
        Assert.Equal(["1.1.1.1"], first.IPConfig.Nameservers);
        Assert.Null(sent.NetworkInterfaces[1].StaticConfig.IPConfig);

        Assert.Equal(("/srv/data.ext4", "/data", "ext4", false), (sent.DriveMounts[0].HostPath, sent.DriveMounts[0].VMPath, sent.DriveMounts[0].FilesystemType, sent.DriveMounts[0].IsWritable));
        Assert.Equal((Path.GetFullPath("scratch.img"), "/scratch", "xfs", true), (sent.DriveMounts[1].HostPath, sent.DriveMounts[1].VMPath, sent.DriveMounts[1].FilesystemType, sent.DriveMounts[1].IsWritable));
        Assert.Equal((32L, 5L, false), (sent.BalloonDevice.AmountMib, sent.BalloonDevice.StatsPollingIntervals, sent.BalloonDevice.DeflateOnOom));
    }

    [Fact]
    public async Task Create_vm_cni_becomes_one_interface_with_CNI_configuration()
    {
        var create = await _h.FcctlAsync("create-vm", "vm1", "--cni", "fcnet:eth1", "--cni-conf-dir", "cni/conf", "--cni-bin-dir", "/opt/cni/bin", "--cni-bin-dir", "/usr/lib/cni");
        Assert.Equal(0, create.Code);
        CNIConfiguration sent = Assert.Single(_h.Shims["default/vm1"].LastCreate!.NetworkInterfaces).CNIConfig;

        Assert.Equal(("fcnet", "eth1", Path.GetFullPath("cni/conf")), (sent.NetworkName, sent.InterfaceName, sent.ConfDir));
        Assert.Equal(["/opt/cni/bin", "/usr/lib/cni"], sent.BinPath);
    }

    [Fact]
    public async Task Create_vm_cni_without_an_interface_or_directories_leaves_them_to_the_shim()
    {
        Assert.Equal(0, (await _h.FcctlAsync("create-vm", "vm1", "--cni", "fcnet")).Code);
        CNIConfiguration sent = Assert.Single(_h.Shims["default/vm1"].LastCreate!.NetworkInterfaces).CNIConfig;

        Assert.Equal(("fcnet", "", ""), (sent.NetworkName, sent.InterfaceName, sent.ConfDir));
        Assert.Empty(sent.BinPath);
    }

    [Fact]
    public async Task Balloon_get_set_and_stats_print_the_shims_answers()
    {
        await _h.StartShimAsync("default", "vm1");
        Assert.Equal((0, "balloon of vm vm1 set to 48 MiB\n", ""), await _h.FcctlAsync("balloon", "set", "vm1", "48"));
        Assert.Equal((0, "balloon of vm vm1\n  target: 48 MiB\n  deflate on oom: no\n  statistics every: 1 s\n", ""), await _h.FcctlAsync("balloon", "get", "vm1"));
        var stats = await _h.FcctlAsync("balloon", "stats", "vm1");
        Assert.Equal(0, stats.Code);
        Assert.Contains("  actual: 64 MiB\n", stats.Stdout, StringComparison.Ordinal);
        Assert.Contains("  guest total: 200 MiB\n", stats.Stdout, StringComparison.Ordinal);
        Assert.Equal((0, "balloon statistics of vm vm1 every 5 s\n", ""), await _h.FcctlAsync("balloon", "stats-interval", "vm1", "5"));
        Assert.Contains("UpdateBalloonStats default vm1 every=5", _h.Shims["default/vm1"].Calls);
    }

    [Fact]
    public async Task An_unknown_vm_exits_3_with_the_status_name_on_stderr()
    {
        var result = await _h.FcctlAsync("info", "nosuch");
        Assert.Equal(3, result.Code);
        Assert.Equal("", result.Stdout);
        Assert.StartsWith("fcctl: NotFound: ", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("no-such-command")]
    [InlineData("create-vm")]
    [InlineData("create-vm", "vm1", "--vcpus", "many")]
    [InlineData("create-vm", "vm1", "--keep")]
    [InlineData("metadata", "set", "vm1", "{not json")]
    [InlineData("metadata")]
    [InlineData("create-vm", "vm1", "--net", "tap0")]
    [InlineData("create-vm", "vm1", "--net", "tap0,,172.16.0.2/24")]
    [InlineData("create-vm", "vm1", "--cni", "fcnet:")]
    [InlineData("create-vm", "vm1", "--cni", "fcnet:eth0:x")]
    [InlineData("create-vm", "vm1", "--drive", "/srv/data.ext4")]
    [InlineData("create-vm", "vm1", "--drive", "/srv/data.ext4:/data:ext4:ro")]
    [InlineData("balloon", "set", "vm1", "lots")]
    [InlineData("balloon", "stats-interval", "vm1")]
    [InlineData("list", "--config", "/nonexistent/fcctl.json")]
    public async Task Usage_errors_exit_2(params string[] args)
    {
        var result = await _h.FcctlAsync(args);
        Assert.Equal(2, result.Code);
        Assert.NotEqual("", result.Stderr);
    }

    [Fact]
    public async Task A_bad_vm_id_is_a_failed_call_exiting_1()
    {
        var result = await _h.FcctlAsync("pause", "../x");
        Assert.Equal(1, result.Code);
        Assert.StartsWith("fcctl: InvalidArgument: ", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_config_file_supplies_the_namespace()
    {
        await _h.StartShimAsync("ns2", "vm1");
        string config = Path.Combine(_h.Options.StateDir, "fcctl.json");
        await File.WriteAllTextAsync(config, "{\"namespace\": \"ns2\"}");
        Assert.Equal((0, "paused vm vm1\n", ""), await _h.FcctlAsync("pause", "vm1", "--config", config));
        Assert.Equal(3, (await _h.FcctlAsync("pause", "vm1")).Code);
    }

    [Fact]
    public async Task The_config_file_supplies_create_vms_kernel_and_sizes_and_flags_win()
    {
        string config = Path.Combine(_h.Options.StateDir, "fcctl.json");
        Directory.CreateDirectory(_h.Options.StateDir);
        await File.WriteAllTextAsync(config, "{\"kernel\": \"/srv/vmlinuz\", \"kernelArgs\": \"console=ttyS0 quiet\", \"vcpus\": 2, \"memMib\": 512}");

        Assert.Equal(0, (await _h.FcctlAsync("create-vm", "vm1", "--config", config)).Code);
        CreateVMRequest first = _h.Shims["default/vm1"].LastCreate!;
        Assert.Equal(("/srv/vmlinuz", "console=ttyS0 quiet", 2u, 512u),
            (first.KernelImagePath, first.KernelArgs, first.MachineCfg.VcpuCount, first.MachineCfg.MemSizeMib));

        Assert.Equal(0, (await _h.FcctlAsync("create-vm", "vm2", "--config", config, "--kernel", "other/vmlinuz", "--kernel-args", "", "--vcpus", "1")).Code);
        CreateVMRequest second = _h.Shims["default/vm2"].LastCreate!;
        Assert.Equal((Path.GetFullPath("other/vmlinuz"), "", 1u, 512u),
            (second.KernelImagePath, second.KernelArgs, second.MachineCfg.VcpuCount, second.MachineCfg.MemSizeMib));

        Assert.Equal(0, (await _h.FcctlAsync("create-vm", "vm3")).Code);
        CreateVMRequest plain = _h.Shims["default/vm3"].LastCreate!;
        Assert.Equal(("", "", null), (plain.KernelImagePath, plain.KernelArgs, plain.MachineCfg));
    }

    [Fact]
    public async Task A_relative_kernel_in_the_config_file_is_a_usage_error()
    {
        string config = Path.Combine(_h.Options.StateDir, "fcctl.json");
        Directory.CreateDirectory(_h.Options.StateDir);
        await File.WriteAllTextAsync(config, "{\"kernel\": \"vmlinuz\"}");
        var result = await _h.FcctlAsync("create-vm", "vm1", "--config", config);
        Assert.Equal(2, result.Code);
        Assert.Contains("kernel must be an absolute path", result.Stderr, StringComparison.Ordinal);
    }
}

/// <summary>The built fcctl executable: its exit code and streams are those of the entry point.</summary>
public sealed class FcctlBinaryTests : IAsyncLifetime
{
    private readonly ControlHarness _h = new();

    public Task InitializeAsync() => _h.InitializeAsync();

    public Task DisposeAsync() => _h.DisposeAsync();

    [Fact]
    public async Task The_fcctl_executable_exits_3_for_an_unknown_vm_and_0_for_list()
    {
        Assert.Equal((3, ""), await RunAsync("info", "nosuch", "--socket", _h.Options.SocketPath));
        Assert.Equal((0, "no vms\n"), await RunAsync("list", "--socket", _h.Options.SocketPath));
    }

    private static async Task<(int Code, string Stdout)> RunAsync(params string[] args)
    {
        string fcctl = Path.Combine(AppContext.BaseDirectory, "fcctl");
        Assert.True(File.Exists(fcctl), $"{fcctl} is missing: the fcctl project's output is not next to the tests");
        var info = new System.Diagnostics.ProcessStartInfo(fcctl) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = System.Diagnostics.Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(limit.Token);
        await stderr;
        return (process.ExitCode, await stdout);
    }
}
