using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.TestSupport;

namespace FirecrackerContainerd.Runtime.Tests.Rootfs;

/// <summary>Rootfs images built from real bind and overlay snapshots, read back with debugfs.</summary>
public sealed class RootfsImageTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("fc-rootfs-test-").FullName;
    private readonly string _work;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(1));

    public RootfsImageTests()
    {
        _work = Path.Combine(_root, "work");
        Directory.CreateDirectory(_work);
    }

    private RootfsImageOptions Options => new(WorkDirectory: _work);

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task A_bind_snapshot_becomes_an_image_with_the_same_files()
    {
        RequireRoot();
        string snapshot = Tree("fs", ("etc/hostname", "box\n"), ("bin/tool", "#!/bin/sh\necho hi\n"));
        File.CreateSymbolicLink(Path.Combine(snapshot, "bin/link"), "tool");
        string imagePath = Path.Combine(_root, "rootfs.ext4");

        RootfsImage image = await RootfsImage.CreateAsync(
            [Mount("bind", snapshot, "rbind", "rw")], imagePath, Options, _timeout.Token);

        Assert.Equal(imagePath, image.Path);
        Assert.Equal(image.SizeBytes, new FileInfo(imagePath).Length);
        Assert.Equal(0, image.SizeBytes % (1 << 20));
        Assert.Equal("box\n", await DebugfsAsync(imagePath, "cat /etc/hostname"));
        Assert.Equal("#!/bin/sh\necho hi\n", await DebugfsAsync(imagePath, "cat /bin/tool"));
        Assert.Contains("Fast link dest: \"tool\"", await DebugfsAsync(imagePath, "stat /bin/link"));
        AssertNothingLeft();
    }

    [Fact]
    public async Task An_overlay_snapshot_becomes_an_image_of_the_merged_view_without_deleted_files()
    {
        RequireRoot();
        string bottom = Tree("lower2", ("etc/os", "bottom\n"), ("etc/shadowed", "bottom\n"), ("etc/deleted", "gone\n"));
        string middle = Tree("lower1", ("etc/shadowed", "middle\n"), ("usr/middle", "only in middle\n"));
        string upper = Tree("upper", ("etc/shadowed", "upper\n"), ("new", "new in upper\n"));
        await Tool.RunAsync("mknod", [Path.Combine(upper, "etc/deleted"), "c", "0", "0"], "coreutils", CancellationToken.None);
        string workdir = Tree("workdir");
        string imagePath = Path.Combine(_root, "rootfs.ext4");

        await RootfsImage.CreateAsync(
            [Mount("overlay", "overlay", "index=off", $"workdir={workdir}", $"upperdir={upper}", $"lowerdir={middle}:{bottom}")],
            imagePath, Options, _timeout.Token);

        Assert.Equal("bottom\n", await DebugfsAsync(imagePath, "cat /etc/os"));
        Assert.Equal("upper\n", await DebugfsAsync(imagePath, "cat /etc/shadowed"));
        Assert.Equal("only in middle\n", await DebugfsAsync(imagePath, "cat /usr/middle"));
        Assert.Equal("new in upper\n", await DebugfsAsync(imagePath, "cat /new"));
        Assert.Contains("File not found", await DebugfsAsync(imagePath, "stat /etc/deleted"));
        Assert.DoesNotContain("deleted", await DebugfsAsync(imagePath, "ls /etc"));
        Assert.True(File.Exists(Path.Combine(bottom, "etc/deleted")), "the snapshot must stay untouched");
        Assert.Empty(Directory.GetFileSystemEntries(workdir));
        AssertNothingLeft();
    }

    [Fact]
    public async Task A_read_only_overlay_of_lower_layers_only_is_accepted()
    {
        RequireRoot();
        string top = Tree("l1", ("a", "top\n"));
        string bottom = Tree("l2", ("a", "bottom\n"), ("b", "b\n"));
        string imagePath = Path.Combine(_root, "rootfs.ext4");

        await RootfsImage.CreateAsync([Mount("overlay", "overlay", "ro", $"lowerdir={top}:{bottom}")], imagePath, Options, _timeout.Token);

        Assert.Equal("top\n", await DebugfsAsync(imagePath, "cat /a"));
        Assert.Equal("b\n", await DebugfsAsync(imagePath, "cat /b"));
        AssertNothingLeft();
    }

    [Fact]
    public async Task An_image_has_room_for_many_files_and_a_large_one()
    {
        RequireRoot();
        string snapshot = Tree("fs");
        for (int i = 0; i < 3000; i++)
        {
            string file = Path.Combine(snapshot, $"d{i % 30}", $"f{i}");
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, new string('x', i));
        }

        await File.WriteAllBytesAsync(Path.Combine(snapshot, "large"), new byte[48 << 20]);
        string imagePath = Path.Combine(_root, "rootfs.ext4");

        RootfsImage image = await RootfsImage.CreateAsync([Mount("bind", snapshot, "rbind", "ro")], imagePath, Options, _timeout.Token);

        Assert.InRange(image.SizeBytes, 48L << 20, 256L << 20);
        Assert.Equal(new string('x', 2999), await DebugfsAsync(imagePath, "cat /d29/f2999"));
        Assert.Contains("Size: 50331648", await DebugfsAsync(imagePath, "stat /large"));
        AssertNothingLeft();
    }

    public static TheoryData<string, string, string[], string> BadMounts => new()
    {
        { "tmpfs", "tmpfs", [], "mount type \"tmpfs\"" },
        { "bind", "relative/dir", ["rbind"], "not an absolute path" },
        { "bind", "/tmp/../etc", ["rbind"], ". or .." },
        { "bind", "/nonexistent-fc-rootfs", ["rbind"], "is not a directory" },
        { "bind", "/tmp", ["rbind", "remount"], "option \"remount\"" },
        { "overlay", "overlay", ["upperdir=/tmp", "workdir=/var/tmp"], "no lowerdir" },
        { "overlay", "overlay", ["lowerdir=/tmp", "upperdir=/var/tmp"], "both upperdir and workdir" },
        { "overlay", "overlay", ["lowerdir=/tmp,upperdir=/etc"], "comma" },
        { "overlay", "overlay", ["lowerdir=/tmp:relative"], "not an absolute path" },
        { "overlay", "overlay", ["lowerdir=/tmp", "lowerdir=/var/tmp"], "given twice" },
        { "overlay", "overlay", ["lowerdir=/tmp:/tmp"], "names a directory twice" },
        { "overlay", "overlay", ["lowerdir=/tmp", "metacopy=on"], "option \"metacopy=on\"" },
        { "overlay", "overlay", ["lowerdir=/tmp", "redirect_dir=follow"], "option \"redirect_dir=follow\"" },
    };

    [Theory]
    [MemberData(nameof(BadMounts))]
    public async Task Bad_mounts_are_rejected_before_anything_is_made(string type, string source, string[] options, string message)
    {
        string imagePath = Path.Combine(_root, "rootfs.ext4");

        var e = await Assert.ThrowsAsync<InvalidRootfsException>(
            () => RootfsImage.CreateAsync([Mount(type, source, options)], imagePath, Options, _timeout.Token));

        Assert.Contains(message, e.Message);
        Assert.False(File.Exists(imagePath));
        AssertNothingLeft();
    }

    [Fact]
    public async Task More_than_one_mount_is_rejected()
    {
        var e = await Assert.ThrowsAsync<InvalidRootfsException>(() => RootfsImage.CreateAsync(
            [Mount("bind", "/tmp", "rbind"), Mount("bind", "/var/tmp", "rbind")], Path.Combine(_root, "x.ext4"), Options, _timeout.Token));

        Assert.Contains("exactly one mount, got 2", e.Message);
    }

    [Fact]
    public async Task An_existing_image_file_is_never_overwritten()
    {
        string snapshot = Tree("fs", ("a", "a"));
        string imagePath = Path.Combine(_root, "rootfs.ext4");
        await File.WriteAllTextAsync(imagePath, "precious");

        await Assert.ThrowsAsync<IOException>(
            () => RootfsImage.CreateAsync([Mount("bind", snapshot, "rbind")], imagePath, Options, _timeout.Token));

        Assert.Equal("precious", await File.ReadAllTextAsync(imagePath));
        AssertNothingLeft();
    }

    [Fact]
    public async Task A_failing_mkfs_leaves_nothing_mounted_and_no_image()
    {
        RequireRoot();
        string snapshot = Tree("fs", ("a", "a"));
        string imagePath = Path.Combine(_root, "rootfs.ext4");

        var e = await Assert.ThrowsAsync<IOException>(() => RootfsImage.CreateAsync(
            [Mount("bind", snapshot, "rbind")], imagePath, Options with { MkfsBinary = "/bin/false" }, _timeout.Token));

        Assert.Contains("exited with status 1", e.Message);
        Assert.False(File.Exists(imagePath));
        Assert.True(File.Exists(Path.Combine(snapshot, "a")));
        AssertNothingLeft();
    }

    private static Mount Mount(string type, string source, params string[] options)
    {
        var mount = new Mount { Type = type, Source = source };
        mount.Options.AddRange(options);
        return mount;
    }

    private string Tree(string name, params (string Path, string Content)[] files)
    {
        string dir = Path.Combine(_root, name);
        Directory.CreateDirectory(dir);
        foreach (var (path, content) in files)
        {
            string file = Path.Combine(dir, path);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, content);
        }

        return dir;
    }

    private void AssertNothingLeft()
    {
        Assert.Empty(Directory.GetFileSystemEntries(_work));
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), line => line.Contains(_root, StringComparison.Ordinal));
    }

    private static void RequireRoot()
    {
        Assert.True(Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root",
            "these tests mount file systems and must run as root");
    }

    private static async Task<string> DebugfsAsync(string image, string request)
    {
        // debugfs prints its banner on stderr, and lookup errors there too.
        (string stdout, string stderr) = await Tool.RunAsync("debugfs", ["-R", request, image], "e2fsprogs", CancellationToken.None);
        return stdout.Length == 0 ? stderr : stdout;
    }
}
