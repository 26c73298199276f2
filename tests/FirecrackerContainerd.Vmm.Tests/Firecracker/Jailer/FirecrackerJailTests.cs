using FirecrackerContainerd.Vmm.Firecracker.Jailer;
using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Vmm.Tests.Firecracker.Jailer;

/// <summary>One VM's jailer jail from the runtime's settings: the uid lease, the jail tree, the cgroup, and what is left after.</summary>
public sealed class FirecrackerJailTests : IDisposable
{
    private const uint UidStart = 902_000;
    private readonly TempDir _dir = new();

    public FirecrackerJailTests()
    {
        Firecracker = _dir.File("firecracker");
        Jailer = _dir.File("jailer");
        Cgroups = new CgroupV1(_dir.Combine("cgroup"));
    }

    private string Firecracker { get; }

    private string Jailer { get; }

    private CgroupV1 Cgroups { get; }

    private string Id { get; } = JailerId.For("default#vm1");

    public void Dispose()
    {
        JailMounts.UnmountAllUnder(_dir.Path);
        _dir.Dispose();
    }

    private JailSettings Settings(DriveExposePolicy policy = DriveExposePolicy.Copy) =>
        new(UidStart, 2, _dir.Combine("base"), "firecracker-containerd", 64, 150, 512, "/unused/fc-jail", "/unused/fc-vhost-vsock")
        {
            JailerBinary = Jailer,
            DriveExposePolicy = policy,
        };

    [Fact]
    public void The_jailer_gets_a_leased_uid_the_settings_chroot_base_parent_and_limits_and_a_valid_command_line()
    {
        var spec = TestSpecs.Full(_dir) with { NetworkNamespace = _dir.File("netns") };

        using var jail = FirecrackerJail.Prepare(Settings(), Cgroups, Id, Firecracker, spec);
        var launch = jail.Launch(["--api-sock", "firecracker.sock"]);

        Assert.Equal(UidStart, jail.Uid);
        Assert.Empty(JailerContract.Violations(launch.Arguments));
        var parsed = JailerContract.Parse(launch.Arguments);
        Assert.Equal([Id], parsed["id"]);
        Assert.Equal([Firecracker], parsed["exec-file"]);
        Assert.Equal([$"{UidStart}"], parsed["uid"]);
        Assert.Equal([$"{UidStart}"], parsed["gid"]);
        Assert.Equal([_dir.Combine("base")], parsed["chroot-base-dir"]);
        Assert.Equal([_dir.Combine("netns")], parsed["netns"]);
        Assert.Equal(["1"], parsed["cgroup-version"]);
        Assert.Equal(["firecracker-containerd"], parsed["parent-cgroup"]);
        Assert.Equal(["no-file=2048"], parsed["resource-limit"]);
        // Guest RAM (256 MiB) plus the configured overhead (64 MiB); 2 vCPUs' weight; the quota and pids limit.
        Assert.Equal(
            [$"memory.limit_in_bytes={320L << 20}", "cpu.shares=2048", "cpu.cfs_period_us=100000", "cpu.cfs_quota_us=150000", "pids.max=512"],
            parsed["cgroup"]);
        Assert.Equal(Jailer, launch.FileName);
        Assert.Equal("firecracker-containerd/" + Id, jail.CgroupPath);
        Assert.Equal(_dir.Combine("base", "firecracker", Id, "root"), jail.Layout.RootDir);
        Assert.Equal($"{UidStart}:{UidStart}", JailLayoutTests.Owner(jail.Layout.RootDir));
    }

    [Fact]
    public void Two_vms_get_two_uids_and_a_disposed_one_gives_its_uid_back()
    {
        var spec = TestSpecs.Minimal(_dir);
        var first = FirecrackerJail.Prepare(Settings(), Cgroups, Id, Firecracker, spec);
        using var second = FirecrackerJail.Prepare(Settings(), Cgroups, JailerId.For("default#vm2"), Firecracker, spec);

        Assert.Equal(UidStart + 1, second.Uid);
        first.Dispose();
        using var third = FirecrackerJail.Prepare(Settings(), Cgroups, JailerId.For("default#vm3"), Firecracker, spec);

        Assert.Equal(UidStart, third.Uid);
    }

    [Fact]
    public void Dispose_leaves_no_jail_directory_no_mount_no_cgroup_and_no_held_uid()
    {
        var spec = TestSpecs.Full(_dir);
        var jail = FirecrackerJail.Prepare(Settings(DriveExposePolicy.Bind), Cgroups, Id, Firecracker, spec);
        jail.Layout.StageSpec(spec);
        // What the jailer makes: the cgroup in each v1 hierarchy its settings name.
        foreach (string directory in Cgroups.Directories(jail.CgroupPath))
        {
            Directory.CreateDirectory(directory);
        }

        jail.Dispose();

        Assert.False(Directory.Exists(_dir.Combine("base", "firecracker", Id)));
        Assert.Empty(JailMounts.Under(_dir.Path));
        Assert.All(Cgroups.Directories("firecracker-containerd/" + Id), d => Assert.False(Directory.Exists(d), d));
        using var lease = new UidAllocator(_dir.Combine("base", "uids"), UidStart, 1).Acquire("check");
        Assert.Equal(UidStart, lease.Uid);
    }

    [Fact]
    public void The_next_start_of_a_vm_clears_what_a_crashed_shim_left()
    {
        string leftover = Directory.CreateDirectory(_dir.Combine("base", "firecracker", Id, "root")).FullName;
        File.WriteAllText(Path.Combine(leftover, "firecracker.pid"), "1");
        string image = _dir.File("container.img", 100);
        var layout = new JailLayout(_dir.Combine("base"), "firecracker", Id, UidStart, UidStart, DriveExposePolicy.Bind);
        layout.Create();
        layout.StageFile(image, "drive_stub0", readOnly: false);
        string cgroup = Directory.CreateDirectory(_dir.Combine("cgroup", "memory", "firecracker-containerd", Id)).FullName;

        using var jail = FirecrackerJail.Prepare(Settings(), Cgroups, Id, Firecracker, TestSpecs.Minimal(_dir));

        Assert.False(File.Exists(Path.Combine(jail.Layout.RootDir, "firecracker.pid")), "the jailer refuses to reuse its pid file");
        Assert.Empty(JailMounts.Under(_dir.Path));
        Assert.False(Directory.Exists(cgroup));
        Assert.Equal(100, new FileInfo(image).Length);
    }

    [Fact]
    public void A_leftover_cgroup_with_live_processes_is_an_error_and_no_uid_stays_held()
    {
        string cgroup = Directory.CreateDirectory(_dir.Combine("cgroup", "pids", "firecracker-containerd", Id)).FullName;
        File.WriteAllText(Path.Combine(cgroup, "cgroup.procs"), "4242\n");

        var e = Assert.Throws<IOException>(() => FirecrackerJail.Prepare(Settings(), Cgroups, Id, Firecracker, TestSpecs.Minimal(_dir)));

        Assert.Contains("4242", e.Message, StringComparison.Ordinal);
        Assert.Contains("vm1", e.Message, StringComparison.Ordinal);
        using var lease = new UidAllocator(_dir.Combine("base", "uids"), UidStart, 1).Acquire("check");
        Assert.Equal(UidStart, lease.Uid);
    }

    [Fact]
    public void A_missing_jailer_is_an_error_naming_the_key_before_anything_is_made()
    {
        var settings = Settings() with { JailerBinary = _dir.Combine("no-jailer") };

        var e = Assert.Throws<FileNotFoundException>(() => FirecrackerJail.Prepare(settings, Cgroups, Id, Firecracker, TestSpecs.Minimal(_dir)));

        Assert.Contains("jail.jailer_path", e.Message, StringComparison.Ordinal);
        Assert.Contains(_dir.Combine("no-jailer"), e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_dir.Combine("base", "firecracker")));
        Assert.False(Directory.Exists(_dir.Combine("base", "uids")));
    }

    [Fact]
    public void A_jailer_name_not_on_path_is_an_error_too()
    {
        var settings = Settings() with { JailerBinary = "jailer-that-is-nowhere" };

        var e = Assert.Throws<FileNotFoundException>(() => FirecrackerJail.Prepare(settings, Cgroups, Id, Firecracker, TestSpecs.Minimal(_dir)));

        Assert.Contains("jailer-that-is-nowhere is not on PATH", e.Message, StringComparison.Ordinal);
    }
}
