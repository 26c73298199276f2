using FirecrackerContainerd.Agent.Cgroups;
using FirecrackerContainerd.Protos.Cgroups.V2;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>The cgroup v2 parser on a fake cgroup directory, with the garbage a broken file could hold.</summary>
public sealed class CgroupMetricsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-cgroup-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Read_fills_pids_cpu_memory_and_io_from_the_files()
    {
        Write("pids.current", "3\n");
        Write("pids.max", "max\n");
        Write("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 90\ncore_sched.force_idle_usec 0\n");
        Write("memory.current", "4096\n");
        Write("memory.max", "1048576\n");
        Write("memory.stat", "anon 100\nfile 200\nkernel_stack 16384\nslab 300\nshmem 4\npgfault 55\npgmajfault 1\nzswapped 9\n");
        Write("io.stat", "8:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n254:16 rbytes=5 wbytes=6 rios=7 wios=8\n");

        Metrics metrics = CgroupMetrics.Read(_dir);

        Assert.Equal(new PidsStat { Current = 3, Limit = ulong.MaxValue }, metrics.Pids);
        Assert.Equal(new CPUStat { UsageUsec = 1500, UserUsec = 1000, SystemUsec = 500, NrPeriods = 7, NrThrottled = 2, ThrottledUsec = 90 }, metrics.Cpu);
        Assert.Equal(4096ul, metrics.Memory.Usage);
        Assert.Equal(1048576ul, metrics.Memory.UsageLimit);
        Assert.Equal(100ul, metrics.Memory.Anon);
        Assert.Equal(200ul, metrics.Memory.File);
        Assert.Equal(16384ul, metrics.Memory.KernelStack);
        Assert.Equal(55ul, metrics.Memory.Pgfault);
        Assert.Equal(
            [new IOEntry { Major = 8, Minor = 0, Rbytes = 1024, Wbytes = 2048, Rios = 3, Wios = 4 }, new IOEntry { Major = 254, Minor = 16, Rbytes = 5, Wbytes = 6, Rios = 7, Wios = 8 }],
            metrics.Io.Usage);
    }

    [Fact]
    public void Read_of_an_empty_directory_is_all_zero()
    {
        Metrics metrics = CgroupMetrics.Read(_dir);

        Assert.Equal(new PidsStat(), metrics.Pids);
        Assert.Equal(new CPUStat(), metrics.Cpu);
        Assert.Equal(new MemoryStat(), metrics.Memory);
        Assert.Empty(metrics.Io.Usage);
    }

    [Fact]
    public void Read_skips_garbage_and_keeps_the_lines_that_parse()
    {
        Write("pids.current", "many\n");
        Write("pids.max", "-1");
        Write("cpu.stat", "usage_usec\nuser_usec 12 extra\nsystem_usec -5\nnr_periods 99999999999999999999999\n\0\xff garbage\nusage_usec 42\n");
        Write("memory.current", "");
        Write("memory.max", "max");
        Write("memory.stat", "anon 1e6\nfile 0x10\n= =\nslab 8\n");
        Write("io.stat", "8 rbytes=1\n8:x rbytes=1\n:1 rbytes=1\n9:1 rbytes=abc wbytes==3 rios wios=4 =5\n\n");
        Directory.CreateDirectory(Path.Join(_dir, "memory.swap.current"));

        Metrics metrics = CgroupMetrics.Read(_dir);

        Assert.Equal(new PidsStat { Current = 0, Limit = 0 }, metrics.Pids);
        Assert.Equal(new CPUStat { UsageUsec = 42 }, metrics.Cpu);
        Assert.Equal(new MemoryStat { Slab = 8, UsageLimit = ulong.MaxValue }, metrics.Memory);
        Assert.Equal([new IOEntry { Major = 9, Minor = 1, Wios = 4 }], metrics.Io.Usage);
    }

    [Fact]
    public void Read_of_a_missing_directory_is_all_zero()
    {
        Metrics metrics = CgroupMetrics.Read(Path.Join(_dir, "gone"));

        Assert.Equal(new Metrics { Pids = new PidsStat(), Cpu = new CPUStat(), Memory = new MemoryStat(), Io = new IOStat() }, metrics);
    }

    [Theory]
    [InlineData("0::/default/c1\n", "/default/c1")]
    [InlineData("12:pids:/x\n4:memory:/y\n0::/c4\n", "/c4")]
    [InlineData("0::/\n", "/")]
    [InlineData("4:memory:/only-v1\n", null)]
    [InlineData("0::relative\n", null)]
    [InlineData("0::/a/../../etc\n", null)]
    [InlineData("0::/gone (deleted)\n", null)]
    [InlineData("", null)]
    public void ParseUnifiedPath_takes_only_the_cgroup_v2_line(string procCgroup, string? expected)
    {
        Assert.Equal(expected, CgroupLocator.ParseUnifiedPath(procCgroup));
    }

    [Theory]
    [InlineData("40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified")]
    [InlineData("25 1 0:22 / /sys/fs/cgroup rw shared:4 - cgroup2 none rw,nsdelegate\n", "/sys/fs/cgroup")]
    [InlineData("35 25 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", null)]
    [InlineData("garbage\n- cgroup2\n", null)]
    public void ParseCgroup2Mount_finds_the_cgroup2_file_system(string mountinfo, string? expected)
    {
        Assert.Equal(expected, CgroupLocator.ParseCgroup2Mount(mountinfo));
    }

    [Fact]
    public void Resolve_keeps_the_cgroup_under_its_mount()
    {
        Assert.Equal("/sys/fs/cgroup/default/c1", CgroupLocator.Resolve("/sys/fs/cgroup", "/default/c1"));
        Assert.Null(CgroupLocator.Resolve("/sys/fs/cgroup", "/../../etc"));
        Assert.Null(CgroupLocator.Resolve("/sys/fs/cgroup", "/../cgroup-other"));
    }

    private void Write(string name, string text) => File.WriteAllText(Path.Join(_dir, name), text);
}
