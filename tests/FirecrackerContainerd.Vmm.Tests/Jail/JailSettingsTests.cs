using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Vmm.Tests.Jail;

public sealed class JailSettingsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private JailSettings Valid => new(900_000, 16, _dir.Combine("jail"), "fc-test", 256, 0, 512, "/bin/true", "/bin/true");

    [Fact]
    public void Valid_settings_have_no_problems() => Assert.Empty(Valid.Problems());

    [Theory]
    [InlineData("count", "count is 0")]
    [InlineData("start", "is not a range of non-zero uids")]
    [InlineData("chroot", "is not an absolute path")]
    [InlineData("cgroup", "is not a relative cgroup path")]
    [InlineData("memory", "memory_overhead_mib -1 is negative")]
    [InlineData("cpu", "cpu_quota_percent -1 is negative")]
    [InlineData("pids", "pids_max -1 is negative")]
    public void Each_bad_setting_is_named(string field, string message)
    {
        JailSettings settings = field switch
        {
            "count" => Valid with { UidCount = 0 },
            "start" => Valid with { UidStart = 0 },
            "chroot" => Valid with { ChrootBase = "relative/jail" },
            "cgroup" => Valid with { CgroupParent = "/abs/../x" },
            "memory" => Valid with { MemoryOverheadMib = -1 },
            "cpu" => Valid with { CpuQuotaPercent = -1 },
            _ => Valid with { PidsMax = -1 },
        };

        Assert.Contains(settings.Problems(), p => p.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Prepare_refuses_a_missing_launcher_before_taking_a_uid()
    {
        var e = Assert.Throws<FileNotFoundException>(() =>
            VmJail.Prepare(Valid with { LauncherBinary = "/nonexistent/fc-jail" }, new CgroupV2(_dir.Combine("cg")), "vm1", 128));

        Assert.Contains("/nonexistent/fc-jail", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_dir.Combine("jail", "uids")));
    }

    [Fact]
    public void Prepare_names_an_unwritable_chroot_base()
    {
        var e = Assert.Throws<IOException>(() => VmJail.Prepare(Valid with { ChrootBase = "/proc/version/jail" }, new CgroupV2(_dir.Combine("cg")), "vm1", 128));

        Assert.Contains("/proc/version/jail", e.Message, StringComparison.Ordinal);
        Assert.Contains("vm \"vm1\"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prepare_clears_a_crashed_shims_jail_directory_and_dispose_removes_it_and_frees_the_uid()
    {
        string stale = _dir.Combine("jail", "vm1", "root", "left-behind");
        Directory.CreateDirectory(stale);

        // The fake v2 tree is plain directories: rmdir of a cgroup with control files fails, so this one gets no limits written.
        var cgroups = new NoLimitCgroups(_dir.Combine("cg"));
        VmJail jail = VmJail.Prepare(Valid, cgroups, "vm1", 128);
        Assert.False(Directory.Exists(stale));
        Assert.Equal(900_000u, jail.Uid);
        jail.Dispose();

        Assert.False(Directory.Exists(_dir.Combine("jail", "vm1")));
        Assert.False(Directory.Exists(_dir.Combine("cg", "fc-test", "vm1")));
        using UidLease again = new UidAllocator(_dir.Combine("jail", "uids"), 900_000, 1).Acquire("vm2");
        Assert.Equal(900_000u, again.Uid);
    }

    private sealed class NoLimitCgroups(string root) : VmCgroups
    {
        public override IReadOnlyList<string> Directories(string path) => [Path.Combine(root, path)];

        public override IReadOnlyList<string> ProcsFiles(string path) => [Path.Combine(root, path, "cgroup.procs")];

        protected override void Limit(string path, CgroupLimits limits)
        {
        }
    }
}
