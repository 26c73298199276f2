using System.Collections.Immutable;
using FirecrackerContainerd.Jail;
using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Vmm.Tests.Jail;

public class JailCommandTests
{
    private static readonly JailedProgram Qemu = new(
        "/usr/bin/qemu-system-x86_64",
        ["-name", "guest=vm1", "-qmp", "unix:qmp.sock,server=on,wait=off", "--", "-kernel", "/k"],
        ["/k", "/i", "/usr/share/qemu"],
        ["/run/vms/ns#vm1"],
        ["/dev/net/tun"],
        ["tap0"],
        "/run/vms/ns#vm1");

    [Fact]
    public void Arguments_parse_in_fc_jail_to_the_same_jail_and_an_unchanged_program_command_line()
    {
        ImmutableArray<string> argv = JailCommand.Arguments("/jail/ns#vm1/root", 900_001, "fc-vm1", ["/sys/fs/cgroup/memory/p/vm1/cgroup.procs"], Qemu);

        JailArguments parsed = JailArguments.Parse(argv);

        Assert.Equal("/jail/ns#vm1/root", parsed.Root);
        Assert.Equal(900_001u, parsed.Uid);
        Assert.Equal(900_001u, parsed.Gid);
        Assert.Equal("fc-vm1", parsed.Hostname);
        Assert.Equal(["/usr/bin/qemu-system-x86_64", .. JailCommand.RuntimeLibraries, "/k", "/i", "/usr/share/qemu"], parsed.ReadOnly);
        Assert.Equal(["/run/vms/ns#vm1"], parsed.ReadWrite);
        Assert.Equal([.. JailCommand.BaseDevices, "/dev/net/tun"], parsed.Devices);
        Assert.Equal(["/sys/fs/cgroup/memory/p/vm1/cgroup.procs"], parsed.CgroupProcs);
        Assert.Equal(["tap0"], parsed.Taps);
        Assert.Equal("/run/vms/ns#vm1", parsed.WorkingDirectory);
        Assert.Equal(0, parsed.ParentFd);
        Assert.Equal("/usr/bin/qemu-system-x86_64", parsed.Program);
        Assert.Equal(Qemu.Arguments, parsed.ProgramArguments);
    }

    [Fact]
    public void Arguments_bind_a_path_named_twice_once()
    {
        ImmutableArray<string> argv = JailCommand.Arguments("/r", 5, "h", [], Qemu with { ReadOnly = ["/usr/bin/qemu-system-x86_64", "/k"], Devices = ["/dev/null"] });

        Assert.Single(JailArguments.Parse(argv).ReadOnly, path => path == "/usr/bin/qemu-system-x86_64");
        Assert.Single(JailArguments.Parse(argv).Devices, path => path == "/dev/null");
    }

    [Fact]
    public void Fc_jail_without_a_parent_descriptor_checks_none()
    {
        Assert.Null(JailArguments.Parse(["--root", "/r", "--uid", "5", "--gid", "5", "--", "/p"]).ParentFd);
    }

    [Theory]
    [InlineData("--root", "/r", "--uid", "0", "--gid", "5", "--", "/p")]
    [InlineData("--root", "/r", "--uid", "5", "--gid", "5", "--ro", "relative", "--", "/p")]
    [InlineData("--root", "/r", "--uid", "5", "--gid", "5", "--rw", "/a/../etc", "--", "/p")]
    [InlineData("--root", "/r", "--uid", "5", "--gid", "5")]
    [InlineData("--uid", "5", "--gid", "5", "--", "/p")]
    [InlineData("--root", "/r", "--uid", "5", "--gid", "5", "--bogus", "x", "--", "/p")]
    [InlineData("--root", "/r", "--uid", "5", "--gid", "5", "--", "p")]
    [InlineData("--root", "/r", "--uid", "5", "--gid", "5", "--parent-fd", "-1", "--", "/p")]
    [InlineData("--root", "/r", "--uid", "5", "--gid", "5", "--parent-fd", "stdin", "--", "/p")]
    public void Fc_jail_refuses_root_relative_paths_dot_dot_bad_descriptors_and_missing_parts(params string[] args) =>
        Assert.Throws<ArgumentException>(() => JailArguments.Parse(args));
}
