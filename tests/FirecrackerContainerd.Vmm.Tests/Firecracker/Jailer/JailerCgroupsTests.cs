using FirecrackerContainerd.Vmm.Firecracker.Jailer;
using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Vmm.Tests.Firecracker.Jailer;

/// <summary>The jailer's <c>--cgroup</c> settings: the QEMU jail's limits, in each version's file names, and accepted by a real hierarchy.</summary>
public class JailerCgroupsTests
{
    private static readonly CgroupLimits Limits = new(768L << 20, 150, 64, Vcpus: 2);

    // The control files of each version the limits use (kernel Documentation/admin-guide/cgroup-v1 and cgroup-v2.rst).
    private static readonly string[] V1Files = ["memory.limit_in_bytes", "cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "pids.max"];
    private static readonly string[] V2Files = ["memory.max", "cpu.weight", "cpu.max", "pids.max"];

    [Fact]
    public void V1_settings_are_the_limits_the_qemu_jail_writes_in_v1_file_names()
    {
        Assert.Equal(
            [$"memory.limit_in_bytes={768L << 20}", "cpu.shares=2048", "cpu.cfs_period_us=100000", "cpu.cfs_quota_us=150000", "pids.max=64"],
            JailerCgroups.Settings(Limits, 1).ToArray());
        Assert.Equal(
            ["memory.limit_in_bytes=1048576", "cpu.shares=1024"],
            JailerCgroups.Settings(new CgroupLimits(1 << 20, 0, 0), 1).ToArray());
    }

    [Fact]
    public void V2_settings_are_the_limits_the_qemu_jail_writes_in_v2_file_names()
    {
        Assert.Equal(
            [$"memory.max={768L << 20}", "cpu.weight=200", "cpu.max=150000 100000", "pids.max=64"],
            JailerCgroups.Settings(Limits, 2).ToArray());
        Assert.Equal(
            ["memory.max=1048576", "cpu.weight=100", "cpu.max=max 100000", "pids.max=max"],
            JailerCgroups.Settings(new CgroupLimits(1 << 20, 0, 0), 2).ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Every_setting_has_the_shape_the_jailer_accepts_and_a_file_of_its_version(int version)
    {
        string[] files = version == 1 ? V1Files : V2Files;
        foreach (string setting in JailerCgroups.Settings(Limits, version))
        {
            Assert.Null(JailerContract.ValueProblem("cgroup", setting));
            string file = setting[..setting.IndexOf('=', StringComparison.Ordinal)];
            Assert.Contains(file, files);
            Assert.Contains(file.Split('.')[0], new[] { "memory", "cpu", "pids" });
        }
    }

    [Fact]
    public void The_version_follows_the_detected_hierarchy()
    {
        Assert.Equal(1, JailerCgroups.VersionOf(new CgroupV1("/sys/fs/cgroup")));
        Assert.Equal(2, JailerCgroups.VersionOf(new CgroupV2("/sys/fs/cgroup")));
        Assert.Throws<ArgumentOutOfRangeException>(() => JailerCgroups.Settings(Limits, 3));
    }

    /// <summary>
    /// Does what the jailer does with our settings on this host's hierarchy: finds each controller's mount in
    /// /proc/self/mounts by its options, makes <c>&lt;mount&gt;/&lt;parent&gt;/&lt;id&gt;</c>, writes each value in order and
    /// reads it back. These machines have v1; the v2 variant runs where v2 is the hierarchy.
    /// </summary>
    [Fact]
    public void The_settings_are_accepted_by_this_hosts_cgroup_hierarchy_as_the_jailer_writes_them()
    {
        VmCgroups detected = VmCgroups.Detect();
        int version = JailerCgroups.VersionOf(detected);
        string cgroup = $"fc-jailer-contract-{Guid.NewGuid():N}"[..32] + "/vm";
        var made = new List<string>();
        try
        {
            foreach (string setting in JailerCgroups.Settings(Limits, version))
            {
                string file = setting[..setting.IndexOf('=', StringComparison.Ordinal)];
                string value = setting[(file.Length + 1)..];
                string directory = Path.Combine(Hierarchy(version, file.Split('.')[0]), cgroup);
                if (!Directory.Exists(directory))
                {
                    Directory.CreateDirectory(directory);
                    made.Add(directory);
                }

                if (version == 2)
                {
                    // As the jailer's write_all_subtree_control: the controller enabled from the root down to the parent.
                    string root = Hierarchy(version, file.Split('.')[0]);
                    File.WriteAllText(Path.Combine(root, "cgroup.subtree_control"), "+" + file.Split('.')[0]);
                    File.WriteAllText(Path.Combine(Path.GetDirectoryName(directory)!, "cgroup.subtree_control"), "+" + file.Split('.')[0]);
                }

                File.WriteAllText(Path.Combine(directory, file), value);
                Assert.Equal(value, File.ReadAllText(Path.Combine(directory, file)).Trim());
            }
        }
        finally
        {
            foreach (string directory in made)
            {
                Directory.Delete(directory);
                Directory.Delete(Path.GetDirectoryName(directory)!);
            }
        }
    }

    // The jailer's CgroupHierarchies: v1 takes the first cgroup mount whose options name the controller, v2 the first cgroup2 mount.
    private static string Hierarchy(int version, string controller)
    {
        foreach (string line in File.ReadLines("/proc/self/mounts"))
        {
            string[] fields = line.Split(' ');
            if (version == 1 && fields[2] == "cgroup" && fields[3].Split(',').Contains(controller))
            {
                return fields[1];
            }

            if (version == 2 && fields[2] == "cgroup2")
            {
                return fields[1];
            }
        }

        throw new InvalidOperationException($"no cgroup v{version} mount has the {controller} controller");
    }
}
