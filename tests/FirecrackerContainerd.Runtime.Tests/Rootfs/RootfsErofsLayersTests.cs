using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.TestSupport;

namespace FirecrackerContainerd.Runtime.Tests.Rootfs;

/// <summary>
/// Which rootfs mounts are the erofs snapshotter's layer files, over the mount lists containerd 2.1.9 returns
/// (plugins/snapshots/erofs: an overlay over <c>snapshots/N/fs</c> directories, each with <c>layer.erofs</c> beside it).
/// </summary>
public sealed class RootfsErofsLayersTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void An_active_snapshot_of_a_two_layer_image_is_its_layer_files_top_first()
    {
        string top = Layer("3");
        string bottom = Layer("2");
        string upper = Active("4");

        RootfsErofsLayers? layers = RootfsErofsLayers.TryParse(
            [Overlay($"workdir={Snapshots("4")}/work", $"upperdir={upper}", $"lowerdir={Snapshots("3")}/fs:{Snapshots("2")}/fs")]);

        Assert.NotNull(layers);
        Assert.Equal([top, bottom], layers.Layers.ToArray());
    }

    [Fact]
    public void An_active_snapshot_of_a_one_layer_image_is_its_one_layer_file()
    {
        string layer = Layer("1");
        string upper = Active("2");

        RootfsErofsLayers? layers = RootfsErofsLayers.TryParse(
            [Overlay($"workdir={Snapshots("2")}/work", $"upperdir={upper}", $"lowerdir={Snapshots("1")}/fs")]);

        Assert.Equal([layer], layers!.Layers.ToArray());
    }

    [Fact]
    public void A_view_of_a_one_layer_image_is_its_loop_mounted_layer_file()
    {
        string layer = Layer("1");

        RootfsErofsLayers? layers = RootfsErofsLayers.TryParse([new Mount { Type = "erofs", Source = layer, Options = { "ro", "loop" } }]);

        Assert.Equal([layer], layers!.Layers.ToArray());
    }

    [Fact]
    public void Another_snapshotters_overlay_is_no_erofs_snapshot()
    {
        Directory.CreateDirectory(_dir.Combine("a"));
        Directory.CreateDirectory(_dir.Combine("b"));

        Assert.Null(RootfsErofsLayers.TryParse([Overlay($"lowerdir={_dir.Combine("a")}:{_dir.Combine("b")}", "index=off", "userxattr")]));
    }

    [Fact]
    public void A_bind_mount_is_no_erofs_snapshot() =>
        Assert.Null(RootfsErofsLayers.TryParse([new Mount { Type = "bind", Source = Active("1"), Options = { "rw", "rbind" } }]));

    [Fact]
    public void An_upper_directory_containerd_already_wrote_into_is_left_to_the_copy()
    {
        Layer("1");
        string upper = Active("2");
        File.WriteAllText(Path.Combine(upper, "hosts"), "written by containerd before the task");

        Assert.Null(RootfsErofsLayers.TryParse([Overlay($"workdir={Snapshots("2")}/work", $"upperdir={upper}", $"lowerdir={Snapshots("1")}/fs")]));
    }

    [Fact]
    public void A_lowerdir_without_its_layer_file_is_refused_naming_it()
    {
        Layer("2");
        Directory.CreateDirectory(Snapshots("1") + "/fs");

        var error = Assert.Throws<InvalidRootfsException>(
            () => RootfsErofsLayers.TryParse([Overlay($"upperdir={Active("3")}", $"lowerdir={Snapshots("2")}/fs:{Snapshots("1")}/fs")]));

        Assert.Contains($"{Snapshots("1")}/layer.erofs", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_option_of_an_erofs_overlay_is_refused_naming_it()
    {
        Layer("1");

        var error = Assert.Throws<InvalidRootfsException>(
            () => RootfsErofsLayers.TryParse([Overlay($"lowerdir={Snapshots("1")}/fs", "metacopy=on")]));

        Assert.Contains("\"metacopy=on\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_lowerdir_with_dot_dot_is_refused_naming_it()
    {
        Layer("1");
        string sneaky = $"{Snapshots("1")}/../1/fs";

        var error = Assert.Throws<InvalidRootfsException>(() => RootfsErofsLayers.TryParse([Overlay($"lowerdir={Snapshots("1")}/fs:{sneaky}")]));

        Assert.Contains(sneaky, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_relative_upperdir_is_refused_naming_it()
    {
        Layer("1");

        var error = Assert.Throws<InvalidRootfsException>(
            () => RootfsErofsLayers.TryParse([Overlay("upperdir=snapshots/2/fs", $"lowerdir={Snapshots("1")}/fs")]));

        Assert.Contains("\"snapshots/2/fs\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_relative_erofs_mount_source_or_an_unknown_option_is_refused()
    {
        string layer = Layer("1");

        Assert.Throws<InvalidRootfsException>(() => RootfsErofsLayers.TryParse([new Mount { Type = "erofs", Source = "snapshots/1/layer.erofs", Options = { "ro" } }]));
        var error = Assert.Throws<InvalidRootfsException>(
            () => RootfsErofsLayers.TryParse([new Mount { Type = "erofs", Source = layer, Options = { "ro", "dax" } }]));
        Assert.Contains("\"dax\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_layer_file_that_is_a_symlink_is_refused()
    {
        string target = Layer("1");
        Directory.CreateDirectory(Snapshots("2") + "/fs");
        File.CreateSymbolicLink($"{Snapshots("2")}/layer.erofs", target);

        Assert.Throws<InvalidRootfsException>(() => RootfsErofsLayers.TryParse([Overlay($"lowerdir={Snapshots("2")}/fs")]));
    }

    private string Snapshots(string id) => _dir.Combine("snapshots", id);

    // A committed snapshot as the erofs differ leaves it: its layer file, and the fs directory it is mounted on.
    private string Layer(string id)
    {
        Directory.CreateDirectory(Path.Combine(Snapshots(id), "fs"));
        string file = Path.Combine(Snapshots(id), "layer.erofs");
        File.WriteAllBytes(file, new byte[4096]);
        return file;
    }

    // An active snapshot: an empty upper directory, a work directory and the snapshotter's marker file.
    private string Active(string id)
    {
        Directory.CreateDirectory(Path.Combine(Snapshots(id), "work"));
        File.WriteAllBytes(Path.Combine(Snapshots(id), ".erofslayer"), []);
        return Directory.CreateDirectory(Path.Combine(Snapshots(id), "fs")).FullName;
    }

    private static Mount Overlay(params string[] options) => new() { Type = "overlay", Source = "overlay", Options = { options } };
}
