using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Vmm.Tests.Jail;

/// <summary>The cgroup writers against a fake hierarchy of plain directories (the real v1 one is tested by JailTests).</summary>
public sealed class VmCgroupsTests : IDisposable
{
    private readonly TempDir _root = new();

    public void Dispose() => _root.Dispose();

    [Fact]
    public void V1_makes_one_cgroup_per_controller_and_writes_memory_cpu_and_pids_limits()
    {
        var cgroups = new CgroupV1(_root.Path);

        cgroups.Create("parent/vm1", new CgroupLimits(768L << 20, 150, 64, Vcpus: 2));

        Assert.Equal((768L << 20).ToString(), Read("memory/parent/vm1/memory.limit_in_bytes"));
        Assert.Equal("100000", Read("cpu/parent/vm1/cpu.cfs_period_us"));
        Assert.Equal("150000", Read("cpu/parent/vm1/cpu.cfs_quota_us"));
        Assert.Equal("64", Read("pids/parent/vm1/pids.max"));
        Assert.Equal("2048", Read("cpu/parent/vm1/cpu.shares"));
        Assert.Equal(
            [_root.Combine("memory/parent/vm1/cgroup.procs"), _root.Combine("cpu/parent/vm1/cgroup.procs"), _root.Combine("pids/parent/vm1/cgroup.procs")],
            cgroups.ProcsFiles("parent/vm1"));
    }

    [Fact]
    public void V1_without_cpu_quota_or_pids_limit_leaves_those_files_alone()
    {
        new CgroupV1(_root.Path).Create("p/vm", new CgroupLimits(1 << 20, 0, 0));

        Assert.False(File.Exists(_root.Combine("cpu/p/vm/cpu.cfs_quota_us")));
        Assert.False(File.Exists(_root.Combine("pids/p/vm/pids.max")));
    }

    [Fact]
    public void V2_delegates_the_controllers_down_to_the_parent_and_writes_max_files()
    {
        var cgroups = new CgroupV2(_root.Path);

        cgroups.Create("a/b/vm1", new CgroupLimits(512L << 20, 50, 0, Vcpus: 4));

        Assert.Equal("+memory +cpu +pids", Read("cgroup.subtree_control"));
        Assert.Equal("+memory +cpu +pids", Read("a/cgroup.subtree_control"));
        Assert.Equal("+memory +cpu +pids", Read("a/b/cgroup.subtree_control"));
        Assert.Equal((512L << 20).ToString(), Read("a/b/vm1/memory.max"));
        Assert.Equal("50000 100000", Read("a/b/vm1/cpu.max"));
        Assert.Equal("max", Read("a/b/vm1/pids.max"));
        Assert.Equal("400", Read("a/b/vm1/cpu.weight"));
        Assert.Equal([_root.Combine("a/b/vm1/cgroup.procs")], cgroups.ProcsFiles("a/b/vm1"));
    }

    [Fact]
    public void V1_parents_weigh_what_their_VMs_weigh_together()
    {
        var cgroups = new CgroupV1(_root.Path);

        cgroups.Create("a/b/vm1", new CgroupLimits(1 << 20, 0, 0, Vcpus: 2));
        cgroups.Create("a/b/vm2", new CgroupLimits(1 << 20, 0, 0, Vcpus: 1));

        Assert.Equal("3072", Read("cpu/a/b/cpu.shares"));
        Assert.Equal("3072", Read("cpu/a/cpu.shares"));
        Assert.False(File.Exists(_root.Combine("cpu/cpu.shares")));
    }

    [Fact]
    public void V1_a_parent_left_without_VMs_gets_the_default_weight_again()
    {
        var cgroups = new CgroupV1(_root.Path);
        Directory.CreateDirectory(_root.Combine("cpu/p"));
        File.WriteAllText(_root.Combine("cpu/p/cpu.shares"), "4096");

        cgroups.WeighAncestors("p/gone");

        Assert.Equal("1024", Read("cpu/p/cpu.shares"));
    }

    [Fact]
    public void V2_parents_weigh_what_their_VMs_weigh_together_within_the_kernels_bound()
    {
        var cgroups = new CgroupV2(_root.Path);

        cgroups.Create("p/vm1", new CgroupLimits(1 << 20, 0, 0, Vcpus: 4));
        Assert.Equal("400", Read("p/cpu.weight"));
        for (int i = 2; i <= 30; i++)
        {
            cgroups.Create($"p/vm{i}", new CgroupLimits(1 << 20, 0, 0, Vcpus: 4));
        }

        Assert.Equal("10000", Read("p/cpu.weight"));
        Assert.False(File.Exists(_root.Combine("cpu.weight")));
    }

    [Fact]
    public void A_leftover_cgroup_with_live_processes_is_an_error_naming_them()
    {
        Directory.CreateDirectory(_root.Combine("p/vm"));
        File.WriteAllText(_root.Combine("p/vm/cgroup.procs"), "4242\n");

        var e = Assert.Throws<IOException>(() => new CgroupV2(_root.Path).Create("p/vm", new CgroupLimits(1, 0, 0)));

        Assert.Contains("4242", e.Message, StringComparison.Ordinal);
        Assert.Contains(_root.Combine("p/vm"), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Detect_picks_v1_on_a_host_whose_unified_hierarchy_has_no_controllers()
    {
        string mounts = _root.Combine("mounts");
        File.WriteAllLines(mounts,
        [
            "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0",
            "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0",
            $"cgroup2 {_root.Path} cgroup2 rw,relatime 0 0",
        ]);
        File.WriteAllText(_root.Combine("cgroup.controllers"), "\n");

        Assert.IsType<CgroupV1>(VmCgroups.Detect(mounts));
    }

    [Fact]
    public void Detect_picks_v2_when_the_unified_hierarchy_holds_the_memory_controller()
    {
        string mounts = _root.Combine("mounts");
        File.WriteAllLines(mounts, [$"cgroup2 {_root.Path} cgroup2 rw,relatime 0 0"]);
        File.WriteAllText(_root.Combine("cgroup.controllers"), "cpuset cpu io memory pids\n");

        Assert.IsType<CgroupV2>(VmCgroups.Detect(mounts));
    }

    private string Read(string relative) => File.ReadAllText(_root.Combine(relative));
}
