using FirecrackerContainerd.Vmm.Firecracker;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;

namespace FirecrackerContainerd.Vmm.Tests.Firecracker.Jailer;

/// <summary>Our jailer command line held to the jailer's documented contract (<see cref="JailerContract"/>).</summary>
public sealed class JailerCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private JailerOptions Options() => new(
        Uid: 900_001,
        Gid: 900_001,
        ChrootBaseDir: Directory.CreateDirectory(_dir.Combine("jail")).FullName,
        JailerBinary: "/usr/bin/jailer",
        NetNsPath: _dir.File("netns"),
        Cgroups: ["memory.limit_in_bytes=536870912", "cpu.shares=2048", "pids.max=512"],
        CgroupVersion: 1,
        ParentCgroup: "firecracker-containerd",
        ResourceLimits: ["no-file=2048"]);

    [Fact]
    public void Every_argument_is_one_the_jailer_accepts_with_a_value_of_the_right_shape()
    {
        string firecracker = _dir.File("firecracker");
        string id = JailerId.For("default#vm1");

        var launch = JailerCommand.Build(Options(), id, firecracker, FirecrackerMachine.FirecrackerArguments());

        Assert.Empty(JailerContract.Violations(launch.Arguments));
        Assert.Equal("/usr/bin/jailer", launch.FileName);
        Assert.Equal(
            [
                "--id", id, "--exec-file", firecracker, "--uid", "900001", "--gid", "900001",
                "--chroot-base-dir", _dir.Combine("jail"), "--netns", _dir.Combine("netns"), "--cgroup-version", "1",
                "--parent-cgroup", "firecracker-containerd", "--cgroup", "memory.limit_in_bytes=536870912", "--cgroup", "cpu.shares=2048",
                "--cgroup", "pids.max=512", "--resource-limit", "no-file=2048",
                "--", "--api-sock", "firecracker.sock",
            ],
            launch.Arguments.ToArray());
    }

    [Fact]
    public void The_pid_namespace_is_ours_not_the_jailers_so_firecracker_stays_our_child()
    {
        var launch = JailerCommand.Build(Options(), "vm1", _dir.File("firecracker"), []);

        Assert.DoesNotContain("--new-pid-ns", launch.Arguments);
        Assert.DoesNotContain("--daemonize", launch.Arguments);
        Assert.True(launch.NewPidNamespace);
        Assert.Null(launch.SetprivPath);
        Assert.Equal(["/usr/bin/jailer", "--id", "vm1"], launch.CommandLine().Take(3));
    }

    [Fact]
    public void The_exec_files_name_is_the_jail_directory()
    {
        string firecracker = _dir.File("firecracker-v1.10");
        string id = JailerId.For("ns#vm");

        var launch = JailerCommand.Build(Options(), id, firecracker, []);
        var parsed = JailerContract.Parse(launch.Arguments);

        Assert.True(Path.IsPathFullyQualified(parsed["exec-file"].Single()));
        Assert.Equal(
            JailLayout.JailDirectoryOf(parsed["chroot-base-dir"].Single(), Path.GetFileName(parsed["exec-file"].Single()), parsed["id"].Single()),
            _dir.Combine("jail", "firecracker-v1.10", id));
    }

    [Fact]
    public void A_linked_firecracker_is_passed_as_the_file_the_jailer_will_name_its_directory_after()
    {
        string real = _dir.File("firecracker-v1.10.1-x86_64");
        string link = _dir.Combine("firecracker");
        File.CreateSymbolicLink(link, real);

        Assert.Equal(real, FirecrackerMachine.ExecFile(link));
        Assert.Equal(real, FirecrackerMachine.ExecFile(real));
    }

    [Theory]
    [InlineData("vm.1")]
    [InlineData("ns#vm1")]
    [InlineData("")]
    public void Ids_the_jailer_would_refuse_are_refused_first(string id)
    {
        var e = Assert.Throws<ArgumentException>(() => JailerCommand.Build(Options(), id, "/usr/bin/firecracker", []));
        Assert.Contains("cannot be a jailer id", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_relative_exec_file_is_refused()
    {
        Assert.Throws<ArgumentException>(() => JailerCommand.Build(Options(), "vm1", "firecracker", []));
    }

    [Theory]
    [InlineData("cpuset.cpus")]
    [InlineData("memory.max=1=2")]
    [InlineData("pids.max=")]
    public void Cgroup_settings_the_jailer_would_refuse_are_refused(string setting)
    {
        var e = Assert.Throws<ArgumentException>(() => JailerCommand.Build(Options() with { Cgroups = [setting] }, "vm1", "/usr/bin/firecracker", []));
        Assert.Contains(setting, e.Message, StringComparison.Ordinal);
    }

    /// <summary>The contract can fail: each broken command line is caught, with the reason.</summary>
    [Theory]
    [InlineData("--id vm_1 --exec-file /bin/sh --uid 1 --gid 1", "not 1..64")]
    [InlineData("--id vm --exec-file sh --uid 1 --gid 1", "not an absolute path")]
    [InlineData("--id vm --exec-file /bin/sh --uid -1 --gid 1", "not a u32")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1", "--gid is required")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --id vm2", "more than once")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --cgroup-version 3", "not 1 or 2")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --parent-cgroup ../x", "'..'")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --cgroup memory", "file=value")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --cgroup max=1", "no controller")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --resource-limit nproc=1", "unknown resource")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --seccomp-level 2", "not a jailer argument")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --netns", "has no value")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 --chroot-base-dir /nonexistent-base", "not an existing directory")]
    [InlineData("--id vm --exec-file /bin/sh --uid 1 --gid 1 -- --id vm", "passed by the jailer itself")]
    public void The_contract_catches_each_broken_command_line(string argv, string problem)
    {
        var violations = JailerContract.Violations(argv.Split(' '));

        Assert.Contains(violations, v => v.Contains(problem, StringComparison.Ordinal));
    }
}
