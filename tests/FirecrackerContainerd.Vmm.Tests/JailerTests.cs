using System.Diagnostics;
using FirecrackerContainerd.Vmm.Firecracker;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;

namespace FirecrackerContainerd.Vmm.Tests;

public class JailerTests
{
    private static JailerOptions Options(string baseDir) => new(Uid: 1234, Gid: 5678, ChrootBaseDir: baseDir);

    [Fact]
    public void The_command_line_puts_jail_settings_before_the_separator_and_firecracker_args_after()
    {
        var options = Options("/srv/jailer") with
        {
            JailerBinary = "/usr/bin/jailer",
            NetNsPath = "/var/run/netns/vm1",
            CgroupVersion = 2,
            ParentCgroup = "fc",
            Cgroups = ["cpuset.cpus=0", "memory.max=268435456"],
        };

        var launch = JailerCommand.Build(options, "vm1", "/usr/bin/firecracker", FirecrackerMachine.FirecrackerArguments(), "/usr/bin/setpriv");

        Assert.Equal("/usr/bin/jailer", launch.FileName);
        Assert.Equal(
            [
                "--id", "vm1", "--exec-file", "/usr/bin/firecracker", "--uid", "1234", "--gid", "5678",
                "--chroot-base-dir", "/srv/jailer", "--netns", "/var/run/netns/vm1", "--cgroup-version", "2",
                "--parent-cgroup", "fc", "--cgroup", "cpuset.cpus=0", "--cgroup", "memory.max=268435456",
                "--", "--api-sock", "firecracker.sock",
            ],
            launch.Arguments.ToArray());
        Assert.Equal(["/usr/bin/setpriv", "--pdeathsig", "KILL", "--", "/usr/bin/jailer"], launch.CommandLine().Take(5));
    }

    [Theory]
    [InlineData("vm.1")]
    [InlineData("vm_1")]
    [InlineData("")]
    [InlineData("vm1\n")]
    public void Ids_the_jailer_would_refuse_are_refused_first(string vmId)
    {
        var e = Assert.Throws<ArgumentException>(() => JailerCommand.Build(Options("/srv"), vmId, "/usr/bin/firecracker", [], null));
        Assert.Contains("cannot be a jailer id", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_relative_exec_file_is_refused()
    {
        Assert.Throws<ArgumentException>(() => JailerCommand.Build(Options("/srv"), "vm1", "firecracker", [], null));
    }

    [Fact]
    public void Staging_hard_links_the_machine_files_into_the_chroot_owned_by_the_jail_user()
    {
        using var dir = new TempDir();
        var layout = new JailLayout(Options(dir.Combine("jail")), "vm1", "/usr/bin/firecracker");
        var spec = TestSpecs.Full(dir);

        layout.Create();
        var jailed = layout.StageSpec(spec);
        var logFifo = layout.CreateFifo("fc-logs.fifo");

        Assert.Equal(dir.Combine("jail", "firecracker", "vm1", "root"), layout.RootDir);
        Assert.Equal("/kernel", jailed.Boot.KernelImagePath);
        Assert.Equal("/initrd", jailed.Boot.InitrdPath);
        Assert.Equal(["/drive_root", "/drive_stub0", "/drive_stub1"], jailed.Drives.Select(d => d.HostPath));
        Assert.Equal(Inode(spec.Boot.KernelImagePath), Inode(layout.HostPath("/kernel")));
        Assert.Equal(Inode(spec.Drives[0].HostPath), Inode(layout.HostPath(jailed.Drives[0].HostPath)));
        Assert.Equal("1234:5678", Owner(layout.HostPath("/drive_stub1")));
        Assert.Equal("1234:5678", Owner(layout.RootDir));
        Assert.Equal("1234:5678", Owner(logFifo));
        Assert.Equal("fifo", Stat("%F", logFifo));
        Assert.Equal(layout.RootDir + "/firecracker.vsock", layout.HostPath("firecracker.vsock"));
    }

    [Fact]
    public void Staging_across_file_systems_copies_instead_of_linking()
    {
        using var dir = new TempDir();
        var shm = Directory.CreateTempSubdirectory("vmm-jail-").FullName; // under /tmp
        var onShm = Path.Combine("/dev/shm", $"vmm-drive-{Guid.NewGuid():N}");
        File.WriteAllText(onShm, "image bytes");
        try
        {
            Assert.True(Stat("%d", "/dev/shm") != Stat("%d", shm), "/dev/shm and /tmp must be different file systems for this test");
            var layout = new JailLayout(Options(shm), "vm1", "/usr/bin/firecracker");
            layout.Create();

            var inJail = layout.StageFile(onShm, JailLayout.DriveName("stub0"));

            Assert.Equal("/drive_stub0", inJail);
            Assert.Equal("image bytes", File.ReadAllText(layout.HostPath(inJail)));
            Assert.NotEqual(Inode(onShm), Inode(layout.HostPath(inJail)));
        }
        finally
        {
            File.Delete(onShm);
            Directory.Delete(shm, recursive: true);
        }
    }

    [Fact]
    public void Restaging_a_drive_replaces_the_link_atomically()
    {
        using var dir = new TempDir();
        var layout = new JailLayout(Options(dir.Combine("jail")), "vm1", "/usr/bin/firecracker");
        layout.Create();
        var first = dir.File("a.img", 10);
        var second = dir.File("b.img", 20);

        layout.StageFile(first, "drive_stub0");
        layout.StageFile(second, "drive_stub0");

        Assert.Equal(Inode(second), Inode(layout.HostPath("/drive_stub0")));
        Assert.False(File.Exists(layout.HostPath("/drive_stub0.staging")));
    }

    [Fact]
    public void Paths_cannot_escape_the_jail()
    {
        using var dir = new TempDir();
        var layout = new JailLayout(Options(dir.Path), "vm1", "/usr/bin/firecracker");

        Assert.Throws<ArgumentException>(() => layout.HostPath("../../etc/passwd"));
        Assert.Throws<ArgumentException>(() => layout.StageFile(dir.File("x"), "../x"));
    }

    private static string Inode(string path) => Stat("%i", path);

    private static string Owner(string path) => Stat("%u:%g", path);

    private static string Stat(string format, string path)
    {
        using var stat = Process.Start(new ProcessStartInfo("stat", ["-c", format, path]) { RedirectStandardOutput = true })!;
        var text = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        Assert.Equal(0, stat.ExitCode);
        return text;
    }
}
