using System.Diagnostics;
using System.Text.Json;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Firecracker;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;
using FirecrackerContainerd.Vmm.Jail;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Tests.Firecracker.Jailer;

namespace FirecrackerContainerd.Vmm.Tests;

/// <summary>The whole driver against a fake <c>firecracker</c> process that serves the contract-checking API server.</summary>
public class FirecrackerMachineProcessTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private static FirecrackerOptions Options(string binary) => new()
    {
        FirecrackerBinary = binary,
        SocketReadyTimeout = TimeSpan.FromSeconds(45), // the fake is a dotnet program; a loaded 2-core machine starts it slowly
        RequestTimeout = TimeSpan.FromSeconds(20),
    };

    [Fact]
    public async Task Spawn_configure_boot_patch_pause_snapshot_stop_and_exit_run_for_real()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource(Patience);
        var ct = cts.Token;
        var record = dir.Combine("requests.jsonl");
        var vmDir = new VmDir(Directory.CreateDirectory(dir.Combine("default#vm1")).FullName);
        var logger = new ListLogger();
        var spec = TestSpecs.Full(dir);
        await using var machine = new FirecrackerMachine(spec, vmDir, Options(FakeFirecrackerBinary.Write(dir, record)), logger);

        await machine.StartAsync(ct);
        var pid = machine.Pid!.Value;
        Assert.Equal(MachineState.Running, await machine.GetStateAsync(ct));
        var image = dir.File("container.ext4");
        await machine.PatchDriveAsync("stub0", image, ct);
        await machine.PauseAsync(ct);
        Assert.Equal(MachineState.Paused, await machine.GetStateAsync(ct));
        await machine.CreateSnapshotAsync(new SnapshotCreate(dir.Combine("snap"), dir.Combine("mem")), ct);
        await machine.ResumeAsync(ct);
        await machine.UpdateBalloonAsync(16, ct);
        Assert.Equal(new BalloonDevice(16, DeflateOnOom: true, StatsPollingIntervalSeconds: 1), await machine.GetBalloonConfigAsync(ct));
        Assert.Equal(16, (await machine.GetBalloonStatisticsAsync(ct)).ActualMib);
        await machine.UpdateBalloonStatisticsAsync(2, ct);
        Assert.Equal(new BalloonDevice(16, DeflateOnOom: true, StatsPollingIntervalSeconds: 2), machine.Spec.Balloon);
        await machine.SetMetadataAsync(JsonDocument.Parse("""{"k":"v"}""").RootElement, ct);
        await machine.PatchMetadataAsync(JsonDocument.Parse("""{"k2":"v2"}""").RootElement, ct);
        await machine.FlushMetricsAsync(ct);
        while (machine.Metrics!.Latest is null)
        {
            await Task.Delay(20, ct);
        }

        var exit = await machine.StopAsync(TimeSpan.FromSeconds(30), ct);

        Assert.Equal(image, machine.Spec.Drives.Single(d => d.DriveId == "stub0").HostPath);
        Assert.Equal(1234, machine.Metrics.Latest.Counter("api_server", "process_startup_time_us"));
        Assert.Contains(logger.Entries, e => e.Message.Contains("Running Firecracker", StringComparison.Ordinal));
        Assert.False(exit.Killed);
        Assert.Equal(0, exit.ExitCode);
        Assert.True(exit.IsClean);
        Assert.Equal(pid, exit.Pid);
        Assert.Same(exit, await machine.Exited);
        Assert.False(Interop.Kill(pid, 0), "the fake firecracker should be gone");
        Assert.False(File.Exists(vmDir.FirecrackerSockPath), "the API socket should be removed after exit");
        var (requests, violations) = FakeFirecrackerBinary.ReadRecord(record);
        Assert.Empty(violations);
        Assert.Equal(
            [
                "PUT /logger 204", "PUT /metrics 204", "PUT /machine-config 204", "PUT /boot-source 204",
                "PUT /drives/root 204", "PUT /drives/stub0 204", "PUT /drives/stub1 204", "PUT /network-interfaces/eth0 204",
                "PUT /vsock 204", "PUT /balloon 204", "PUT /mmds/config 204", "PUT /mmds 204", "PUT /actions 204",
                "GET / 200", "PATCH /drives/stub0 204", "PATCH /vm 204", "GET / 200", "PUT /snapshot/create 204", "PATCH /vm 204",
                "PATCH /balloon 204", "GET /balloon 200", "GET /balloon/statistics 200", "PATCH /balloon/statistics 204", "PUT /mmds 204", "PATCH /mmds 204", "PUT /actions 204", "PUT /actions 204",
            ],
            requests.Where(r => r != "GET /machine-config 200"));
    }

    [Fact]
    public async Task A_vm_directory_deeper_than_the_socket_path_limit_still_works()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource(Patience);
        var ns = new string('n', 76);
        var vmDirPath = Directory.CreateDirectory(dir.Combine($"{ns}#{new string('v', 76)}")).FullName;
        Assert.True(vmDirPath.Length > UnixSocketPath.MaxPathBytes);
        var record = dir.Combine("requests.jsonl");
        await using var machine = new FirecrackerMachine(
            TestSpecs.Full(dir, "vm7"), new VmDir(vmDirPath), Options(FakeFirecrackerBinary.Write(dir, record)), new ListLogger());

        await machine.StartAsync(cts.Token);
        var state = await machine.GetStateAsync(cts.Token);
        var exit = await machine.StopAsync(TimeSpan.FromSeconds(30), cts.Token);

        Assert.Equal(MachineState.Running, state);
        Assert.True(exit.IsClean);
        Assert.Equal(Path.Combine(vmDirPath, "firecracker.vsock"), machine.VsockHostPath);
        Assert.Empty(FakeFirecrackerBinary.ReadRecord(record).Violations);
    }

    [Fact]
    public async Task Jailed_start_runs_the_jailer_with_a_valid_command_line_and_talks_to_the_socket_inside_the_jail()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource(Patience);
        var record = dir.Combine("requests.jsonl");
        var argv = dir.Combine("jailer-argv");
        var firecracker = FakeFirecrackerBinary.Write(dir, record);
        // Stands in for the jailer: no chroot or privilege drop, but it records its arguments and its pid (1 in the pid
        // namespace the launch asks for), and execs Firecracker in the jail root as the jailer does.
        var jailer = dir.Combine("jailer");
        File.WriteAllText(jailer, $$"""
            #!/bin/sh
            printf '%s\n' "$@" > '{{argv}}'
            echo "pid $$" >> '{{argv}}.pid'
            while [ $# -gt 0 ]; do
              case "$1" in
                --id) id=$2; shift 2;;
                --exec-file) exe=$2; shift 2;;
                --chroot-base-dir) base=$2; shift 2;;
                --) shift; break;;
                *) shift 2;;
              esac
            done
            cd "$base/$(basename "$exe")/$id/root" && exec "$exe" --id="$id" "$@"
            """.ReplaceLineEndings("\n"));
        File.SetUnixFileMode(jailer, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var settings = new JailSettings(903_000, 4, dir.Combine("base"), "firecracker-containerd", 64, 0, 512, "/unused", "/unused") { JailerBinary = jailer };
        var options = Options(firecracker) with { Jail = settings, Cgroups = new CgroupV1(dir.Combine("cgroup")) };
        var vmDir = new VmDir(dir.Combine("default#vm8"));
        var spec = TestSpecs.Full(dir, "vm8");
        await using var machine = new FirecrackerMachine(spec, vmDir, options, new ListLogger());

        await machine.StartAsync(cts.Token);
        var root = dir.Combine("base", "firecracker", machine.JailerIdentity!, "root");
        var uid = machine.JailUid;
        var owners = new[] { "kernel", "initrd", "drive_root", "drive_stub0", "drive_stub1", "fc-logs.fifo", "fc-metrics.fifo", "." }
            .Select(name => JailLayoutTests.Owner(Path.Combine(root, name))).Distinct().ToArray();
        var image = dir.File("container.ext4", 8192);
        await machine.PatchDriveAsync("stub1", image, cts.Token);
        var patched = new FileInfo(Path.Combine(root, "drive_stub1-1")).Length;
        var oldStubGone = !File.Exists(Path.Combine(root, "drive_stub1"));
        var exit = await machine.StopAsync(TimeSpan.FromSeconds(30), cts.Token);

        var args = File.ReadAllLines(argv);
        Assert.True(exit.IsClean);
        Assert.Empty(JailerContract.Violations(args));
        Assert.Equal(["pid 1"], File.ReadAllLines(argv + ".pid"));
        Assert.Equal(903_000u, uid);
        Assert.Equal(["903000:903000"], owners);
        Assert.Equal(JailerId.For("default#vm8"), machine.JailerIdentity);
        Assert.Equal(Path.Combine(root, "firecracker.sock"), machine.ControlSocketPath);
        Assert.Equal(Path.Combine(root, "firecracker.vsock"), machine.VsockHostPath);
        Assert.Equal(8192, patched);
        Assert.True(oldStubGone, "the replaced drive file should be gone once Firecracker switched");
        // Every path Firecracker was given lies inside the jail root.
        foreach (var path in new[]
                 {
                     FakeFirecrackerBinary.Body(record, "PUT", "/boot-source").GetProperty("kernel_image_path").GetString()!,
                     FakeFirecrackerBinary.Body(record, "PUT", "/boot-source").GetProperty("initrd_path").GetString()!,
                     FakeFirecrackerBinary.Body(record, "PUT", "/drives/root").GetProperty("path_on_host").GetString()!,
                     FakeFirecrackerBinary.Body(record, "PATCH", "/drives/stub1").GetProperty("path_on_host").GetString()!,
                     FakeFirecrackerBinary.Body(record, "PUT", "/vsock").GetProperty("uds_path").GetString()!,
                     FakeFirecrackerBinary.Body(record, "PUT", "/logger").GetProperty("log_path").GetString()!,
                     FakeFirecrackerBinary.Body(record, "PUT", "/metrics").GetProperty("metrics_path").GetString()!,
                 })
        {
            Assert.StartsWith(root + "/", Path.GetFullPath(path.TrimStart('/'), root), StringComparison.Ordinal);
        }

        Assert.Equal("/drive_stub1-1", FakeFirecrackerBinary.Body(record, "PATCH", "/drives/stub1").GetProperty("path_on_host").GetString());
        Assert.Empty(FakeFirecrackerBinary.ReadRecord(record).Violations);
        // A Firecracker that is gone leaves no jail directory and no held uid.
        Assert.False(Directory.Exists(dir.Combine("base", "firecracker", machine.JailerIdentity!)));
        Assert.Null(machine.JailUid);
        using var lease = new UidAllocator(dir.Combine("base", "uids"), 903_000, 1).Acquire("check");
        Assert.Equal(903_000u, lease.Uid);
    }

    [Fact]
    public async Task A_jailed_start_without_its_jailer_fails_before_anything_starts()
    {
        using var dir = new TempDir();
        var settings = new JailSettings(903_100, 1, dir.Combine("base"), "firecracker-containerd", 64, 0, 512, "/unused", "/unused")
        {
            JailerBinary = dir.Combine("no-jailer"),
        };
        var options = Options(FakeFirecrackerBinary.Write(dir, dir.Combine("r"))) with { Jail = settings, Cgroups = new CgroupV1(dir.Combine("cgroup")) };
        await using var machine = new FirecrackerMachine(TestSpecs.Minimal(dir), new VmDir(dir.Combine("default#vm1")), options, new ListLogger());

        var e = await Assert.ThrowsAsync<FileNotFoundException>(() => machine.StartAsync(default));

        Assert.Contains("jail.jailer_path", e.Message, StringComparison.Ordinal);
        Assert.Null(machine.Pid);
        Assert.False(Directory.Exists(dir.Combine("base", "firecracker")));
    }

    [Fact]
    public async Task Restore_loads_a_snapshot_into_a_fresh_firecracker_instead_of_configuring_it()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource(Patience);
        var record = dir.Combine("requests.jsonl");
        var vmDir = new VmDir(Directory.CreateDirectory(dir.Combine("default#vm9")).FullName);
        await using var machine = new FirecrackerMachine(
            TestSpecs.Minimal(dir, "vm9"), vmDir, Options(FakeFirecrackerBinary.Write(dir, record)), new ListLogger());

        await machine.RestoreAsync(
            new SnapshotLoad(dir.Combine("snap"), dir.Combine("mem"), ResumeVm: true, VsockUdsPathOverride: "firecracker.vsock"), cts.Token);
        var state = await machine.GetStateAsync(cts.Token);
        var exit = await machine.StopAsync(TimeSpan.FromSeconds(30), cts.Token);

        Assert.Equal(MachineState.Running, state);
        Assert.True(exit.IsClean);
        var (requests, violations) = FakeFirecrackerBinary.ReadRecord(record);
        Assert.Empty(violations);
        Assert.Equal(["PUT /logger 204", "PUT /metrics 204", "PUT /snapshot/load 204", "GET / 200", "PUT /actions 204"],
            requests.Where(r => r != "GET /machine-config 200"));
        var load = FakeFirecrackerBinary.Body(record, "PUT", "/snapshot/load");
        Assert.Equal("File", load.GetProperty("mem_backend").GetProperty("backend_type").GetString());
        Assert.Equal(dir.Combine("mem"), load.GetProperty("mem_backend").GetProperty("backend_path").GetString());
    }

    [Fact]
    public async Task A_vmm_that_ignores_ctrl_alt_del_is_killed_after_the_bounded_wait()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource(Patience);
        var record = dir.Combine("requests.jsonl");
        var vmDir = new VmDir(Directory.CreateDirectory(dir.Combine("default#vm2")).FullName);
        await using var machine = new FirecrackerMachine(
            TestSpecs.Minimal(dir, "vm2"), vmDir, Options(FakeFirecrackerBinary.Write(dir, record, stubborn: true)), new ListLogger());
        await machine.StartAsync(cts.Token);

        var exit = await machine.StopAsync(TimeSpan.FromMilliseconds(500), cts.Token);

        Assert.True(exit.Killed);
        Assert.Equal(128 + 9, exit.ExitCode);
        Assert.Contains("PUT /actions 204", FakeFirecrackerBinary.ReadRecord(record).Requests[^1]);
        Assert.Empty(FakeFirecrackerBinary.ReadRecord(record).Violations);
    }

    [Fact]
    public async Task A_vmm_that_dies_on_its_own_is_reported_through_Exited()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource(Patience);
        var vmDir = new VmDir(Directory.CreateDirectory(dir.Combine("default#vm3")).FullName);
        await using var machine = new FirecrackerMachine(
            TestSpecs.Minimal(dir, "vm3"), vmDir, Options(FakeFirecrackerBinary.Write(dir, dir.Combine("r"))), new ListLogger());
        await machine.StartAsync(cts.Token);

        Interop.Kill(machine.Pid!.Value, Interop.SIGTERM);
        var exit = await machine.Exited.WaitAsync(cts.Token);

        Assert.False(exit.Killed);
        Assert.NotEqual(0, exit.ExitCode);
    }

    [Fact]
    public async Task A_vmm_that_exits_before_its_socket_appears_fails_start_with_its_status()
    {
        using var dir = new TempDir();
        var script = dir.Combine("firecracker");
        File.WriteAllText(script, "#!/bin/sh\necho 'no kvm here' >&2\nexit 3\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var vmDir = new VmDir(Directory.CreateDirectory(dir.Combine("default#vm4")).FullName);
        await using var machine = new FirecrackerMachine(TestSpecs.Minimal(dir, "vm4"), vmDir, Options(script), new ListLogger());

        var e = await Assert.ThrowsAsync<IOException>(() => machine.StartAsync(default));

        Assert.Contains("exited with status 3", e.Message, StringComparison.Ordinal);
        Assert.Contains("vm4", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_vmm_whose_socket_never_answers_times_out_and_is_killed()
    {
        using var dir = new TempDir();
        var script = dir.Combine("firecracker");
        File.WriteAllText(script, "#!/bin/sh\nexec sleep 60\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var vmDir = new VmDir(Directory.CreateDirectory(dir.Combine("default#vm5")).FullName);
        await using var machine = new FirecrackerMachine(
            TestSpecs.Minimal(dir, "vm5"), vmDir, Options(script) with { SocketReadyTimeout = TimeSpan.FromMilliseconds(300) }, new ListLogger());

        var e = await Assert.ThrowsAsync<TimeoutException>(() => machine.StartAsync(default));
        var exit = await machine.Exited.WaitAsync(Patience);

        Assert.Contains("did not answer within 300 ms", e.Message, StringComparison.Ordinal);
        Assert.True(exit.Killed);
    }

    [Fact]
    public async Task A_missing_kernel_fails_start_before_anything_is_spawned()
    {
        using var dir = new TempDir();
        var spec = TestSpecs.Minimal(dir, "vm6");
        File.Delete(spec.Boot.KernelImagePath);
        var vmDir = new VmDir(Directory.CreateDirectory(dir.Combine("default#vm6")).FullName);
        await using var machine = new FirecrackerMachine(spec, vmDir, Options("/nonexistent/firecracker"), new ListLogger());

        var e = await Assert.ThrowsAsync<InvalidMachineSpecException>(() => machine.StartAsync(default));

        Assert.Contains("kernel image", e.Message, StringComparison.Ordinal);
        Assert.Null(machine.Pid);
    }

    [Fact]
    public async Task Setpriv_parent_death_signal_kills_the_child_when_its_parent_dies()
    {
        // The driver relies on util-linux setpriv: a child started through it must not outlive its parent.
        // The parent lingers a moment so that setpriv's prctl happens while it is still alive (a parent
        // that is already gone never "dies" for the child; the driver's owning thread outlives the VMM).
        var setpriv = Launch.VmmLaunch.DefaultSetprivPath;
        Assert.True(File.Exists(setpriv), $"{setpriv} is missing: install util-linux (apt-get install util-linux)");
        using var parent = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", $"{setpriv} --pdeathsig KILL -- sleep 60 & echo $!; sleep 1"])
        {
            RedirectStandardOutput = true,
        })!;
        var childPid = int.Parse((await parent.StandardOutput.ReadLineAsync())!, System.Globalization.CultureInfo.InvariantCulture);
        await parent.WaitForExitAsync();

        var gone = false;
        for (var i = 0; i < 500 && !gone; i++)
        {
            gone = !File.Exists($"/proc/{childPid}/stat") || File.ReadAllText($"/proc/{childPid}/stat").Contains(") Z ", StringComparison.Ordinal);
            if (!gone)
            {
                await Task.Delay(10);
            }
        }

        if (!gone)
        {
            Interop.Kill(childPid, Interop.SIGKILL);
        }

        Assert.True(gone, $"child {childPid} survived its parent");
    }
}
