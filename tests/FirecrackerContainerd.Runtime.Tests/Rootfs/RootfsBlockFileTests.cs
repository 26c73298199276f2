using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.TestSupport;

namespace FirecrackerContainerd.Runtime.Tests.Rootfs;

/// <summary>Which rootfs mounts are a snapshot's block file to attach as it is, and which loop mounts are refused.</summary>
public sealed class RootfsBlockFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void The_blockfile_snapshotters_writable_loop_mount_is_its_file_with_the_guest_options()
    {
        string file = _dir.File("snapshot");

        RootfsBlockFile? blockFile = RootfsBlockFile.TryParse([Mount("ext4", file, "loop", "rw", "noatime")]);

        Assert.NotNull(blockFile);
        Assert.Equal(file, blockFile.Path);
        Assert.Equal(["noatime"], blockFile.Options.ToArray());
    }

    [Theory]
    [InlineData("bind", "rbind", "rw")]
    [InlineData("overlay", "lowerdir=/a:/b", "ro")]
    [InlineData("ext4", "rw", "noatime")]
    public void Mounts_without_loop_are_no_block_file(string type, params string[] options) =>
        Assert.Null(RootfsBlockFile.TryParse([Mount(type, _dir.Path, options)]));

    [Fact]
    public void Two_mounts_are_no_block_file() =>
        Assert.Null(RootfsBlockFile.TryParse([Mount("ext4", _dir.File("a"), "loop"), Mount("ext4", _dir.File("b"), "loop")]));

    [Fact]
    public void A_read_only_view_is_refused_because_its_file_may_be_shared()
    {
        string file = _dir.File("view");

        var error = Assert.Throws<InvalidRootfsException>(() => RootfsBlockFile.TryParse([Mount("ext4", file, "loop", "ro")]));

        Assert.Contains(file, error.Message, StringComparison.Ordinal);
        Assert.Contains("read-only snapshot", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Another_file_system_than_ext4_is_refused_naming_it()
    {
        var error = Assert.Throws<InvalidRootfsException>(() => RootfsBlockFile.TryParse([Mount("xfs", _dir.File("x"), "loop", "rw")]));

        Assert.Contains("holds xfs", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_option_the_guest_cannot_honour_is_refused_naming_it()
    {
        var error = Assert.Throws<InvalidRootfsException>(
            () => RootfsBlockFile.TryParse([Mount("ext4", _dir.File("s"), "loop", "rw", "data=journal")]));

        Assert.Contains("\"data=journal\"", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("relative/file")]
    [InlineData("/tmp/../etc/passwd")]
    [InlineData("/nonexistent/snapshot")]
    public void A_source_that_is_not_an_absolute_existing_file_is_refused(string source)
    {
        var error = Assert.Throws<InvalidRootfsException>(() => RootfsBlockFile.TryParse([Mount("ext4", source, "loop", "rw")]));

        Assert.Contains(source, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_directory_or_a_symlink_is_refused()
    {
        string link = _dir.Combine("link");
        File.CreateSymbolicLink(link, _dir.File("target"));

        Assert.Throws<InvalidRootfsException>(() => RootfsBlockFile.TryParse([Mount("ext4", _dir.Path, "loop", "rw")]));
        Assert.Throws<InvalidRootfsException>(() => RootfsBlockFile.TryParse([Mount("ext4", link, "loop", "rw")]));
    }

    private static Mount Mount(string type, string source, params string[] options) =>
        new() { Type = type, Source = source, Options = { options } };
}
