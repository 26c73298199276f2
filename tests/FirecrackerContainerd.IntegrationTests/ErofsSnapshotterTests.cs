using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// Containers whose rootfs comes from containerd's erofs snapshotter (containerd 2.1 and later): each image layer is an
/// EROFS file that the VM attaches read-only as a layer slot, and the guest stacks them with overlayfs over an upper
/// layer in guest memory. Nothing is copied, the layer files are never written, and a container's writes stay in the
/// guest (containerd's upper directory stays empty: docs/snapshotters.md says why).
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed partial class ErofsSnapshotterTests(ContainerdFixture containerd, ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Namespace = "fcerofs";
    private const string Snapshotter = "erofs";
    private const string VmIdAnnotation = "aws.firecracker.vm.id";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));
    private string? _runtimeConfig;

    private string SnapshotDirectory => Path.Combine(containerd.Directory, "root", "io.containerd.snapshotter.v1.erofs", "snapshots");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await containerd.RemoveLeftoversAsync();
        if (_runtimeConfig is not null)
        {
            await File.WriteAllTextAsync(containerd.RuntimeConfigPath, _runtimeConfig);
        }
    }

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task Snapshotter_erofs_is_served_by_containerd_from_2_1_on()
    {
        bool expected = Version.Parse(Regex.Match(containerd.Version, @"^\d+\.\d+").Value) >= new Version(2, 1);

        Assert.Equal(expected, await HasErofsAsync());
    }

    [Fact]
    public async Task Snapshotter_erofs_container_write_stays_in_the_guest_and_the_layer_files_are_untouched()
    {
        if (!await HasErofsAsync())
        {
            return;
        }

        const string id = "ef-write";
        await PrepareAsync(layerSlots: 2);
        await containerd.ImportBusyboxImageAsync(Namespace, Snapshotter);
        Dictionary<string, string> layers = LayerChecksums();
        Assert.NotEmpty(layers);
        containerd.NoteTaskId(Namespace, id);

        CommandResult run = await RunAsync(["run", "--runtime", "aws.firecracker", "--snapshotter", Snapshotter, BusyboxImage.Name, id,
            "sh", "-c", "echo written in the vm > /kept && cat /kept && grep ' / ' /proc/mounts"]);

        Assert.True(run.ExitCode == 0, containerd.Describe(run));
        Assert.StartsWith("written in the vm\noverlay / overlay ", run.Stdout, StringComparison.Ordinal);
        Assert.Contains($"create {id}: rootfs is the erofs snapshot's 1 layer files", containerd.ContainerdLog, StringComparison.Ordinal);
        // The write lived in the guest's upper layer: containerd's upper directory of the snapshot never saw it.
        string upper = await UpperDirectoryAsync(id);
        Assert.Empty(Directory.EnumerateFileSystemEntries(upper));
        Assert.Equal(layers, LayerChecksums());

        await containerd.CtrAsync(Namespace, "task", "rm", id);
        await containerd.RemoveContainerAsync(Namespace, id);
        Assert.True(await Eventually.HoldsAsync(() => !Directory.Exists(Path.GetDirectoryName(upper))), $"containerd kept the snapshot {upper}");
        Assert.Equal(layers, LayerChecksums());
        await containerd.AssertNothingLeftAsync(Namespace, id, id);
    }

    [Fact]
    public async Task Snapshotter_erofs_two_containers_from_one_image_in_one_vm_each_have_their_own_upper_layer()
    {
        if (!await HasErofsAsync())
        {
            return;
        }

        const string vmId = "ef-shared-vm";
        string[] ids = ["ef-first", "ef-second"];
        await PrepareAsync(layerSlots: 2);
        await containerd.ImportBusyboxImageAsync(Namespace, Snapshotter);
        foreach (string id in ids)
        {
            containerd.NoteTaskId(Namespace, id);
        }

        CommandResult first = await RunAsync(["run", "-d", "--runtime", "aws.firecracker", "--snapshotter", Snapshotter,
            "--annotation", $"{VmIdAnnotation}={vmId}", BusyboxImage.Name, ids[0], "sh", "-c", "echo first > /who; exec sleep 600"]);
        Assert.True(first.ExitCode == 0, containerd.Describe(first));
        Assert.True(await containerd.TaskReachesAsync(Namespace, ids[0], "RUNNING", TimeSpan.FromSeconds(90)), containerd.ShimLog());

        CommandResult second = await RunAsync(["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", Snapshotter,
            "--annotation", $"{VmIdAnnotation}={vmId}", BusyboxImage.Name, ids[1],
            "sh", "-c", "cat /who 2>/dev/null || echo none; echo second > /who; cat /who; cat /proc/sys/kernel/random/boot_id"]);
        CommandResult exec = await containerd.CtrAsync(Namespace, "task", "exec", "--exec-id", "look", ids[0],
            "sh", "-c", "cat /who; cat /proc/sys/kernel/random/boot_id");

        Assert.True(second.ExitCode == 0, containerd.Describe(second));
        Assert.True(exec.ExitCode == 0, containerd.Describe(exec));
        string[] secondLines = second.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] firstLines = exec.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["none", "second"], secondLines[..2]);
        Assert.Equal("first", firstLines[0]);
        Assert.Equal(firstLines[1], secondLines[2]);
        Assert.Equal(2, Regex.Count(containerd.ContainerdLog, @"create ef-(first|second): rootfs is the erofs snapshot's"));

        await containerd.RemoveContainerAsync(Namespace, ids[0]);
        await containerd.AssertNothingLeftAsync(Namespace, vmId, ids);
    }

    [Fact]
    public async Task Snapshotter_erofs_300_MiB_of_image_content_in_3000_files_over_4_layers_checksum_inside_the_guest()
    {
        if (!await HasErofsAsync())
        {
            return;
        }

        const string id = "ef-big";
        const string image = "docker.io/library/fc-big-layers:latest";
        await PrepareAsync(layerSlots: 4);
        await ImportAsync(image, "300", "3000", "3");
        try
        {
            containerd.NoteTaskId(Namespace, id);

            CommandResult run = await containerd.CtrAsync(Namespace, TimeSpan.FromMinutes(5),
                "run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", Snapshotter, image, id,
                "sh", "-c", "cd / && sha256sum -c data.sha256 > /tmp/checked; echo $?; grep -c ': OK$' /tmp/checked");

            Assert.True(run.ExitCode == 0, containerd.Describe(run));
            Assert.Equal(["0", "3000"], run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains($"create {id}: rootfs is the erofs snapshot's 4 layer files", containerd.ContainerdLog, StringComparison.Ordinal);
            await containerd.AssertNothingLeftAsync(Namespace, id, id);
        }
        finally
        {
            await containerd.CtrAsync(Namespace, "image", "rm", image);
        }
    }

    [Fact]
    public async Task Snapshotter_erofs_image_with_more_layers_than_free_layer_slots_is_refused_clearly_and_leaves_nothing()
    {
        if (!await HasErofsAsync())
        {
            return;
        }

        const string id = "ef-too-many";
        const string image = "docker.io/library/fc-four-layers:latest";
        await PrepareAsync(layerSlots: 2);
        await ImportAsync(image, "3", "30", "3");
        try
        {
            containerd.NoteTaskId(Namespace, id);

            CommandResult run = await RunAsync(["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", Snapshotter, image, id, "true"]);

            Assert.NotEqual(0, run.ExitCode);
            Assert.Contains("layer_slots", run.Stderr, StringComparison.Ordinal);
            Assert.Contains("needs 4, one per erofs layer", run.Stderr, StringComparison.Ordinal);
            await containerd.RemoveContainerAsync(Namespace, id);
            await containerd.AssertNothingLeftAsync(Namespace, id, id);
        }
        finally
        {
            await containerd.CtrAsync(Namespace, "image", "rm", image);
        }
    }

    // The guest image, and layer slots in the runtime configuration the shims read (restored when the test ends).
    private async Task PrepareAsync(int layerSlots)
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        _runtimeConfig ??= await File.ReadAllTextAsync(containerd.RuntimeConfigPath);
        JsonObject config = JsonNode.Parse(_runtimeConfig)!.AsObject();
        config["layer_slots"] = layerSlots;
        await File.WriteAllTextAsync(containerd.RuntimeConfigPath, config.ToJsonString());
    }

    // A busybox image with DATA-MIB in DATA-FILES spread over DATA-LAYERS layers above busybox's own.
    private async Task ImportAsync(string image, string mib, string files, string dataLayers)
    {
        string tar = Path.Combine(containerd.Directory, "layers-oci.tar");
        try
        {
            CommandResult build = await ProcessRunner.RunAsync(
                Path.Combine(TestSupport.GuestImage.RepoRoot(), "scripts", "lib", "busybox-oci-image"), [tar, image, mib, files, dataLayers], TimeSpan.FromMinutes(5));
            Assert.True(build.ExitCode == 0, build.Output);
            CommandResult import = await containerd.CtrAsync(Namespace, TimeSpan.FromMinutes(5), "image", "import", "--snapshotter", Snapshotter, tar);
            Assert.True(import.ExitCode == 0, containerd.Describe(import));
        }
        finally
        {
            File.Delete(tar);
        }
    }

    // Whether containerd lists the erofs snapshotter and differ as loaded; one that lists them but failed to load them
    // fails the test. containerd 1.6, 1.7 and 2.0 have none, and there the tests that need it end here.
    private async Task<bool> HasErofsAsync()
    {
        CommandResult plugins = await containerd.CtrAsync(Namespace, "plugins", "ls");
        Assert.True(plugins.ExitCode == 0, containerd.Describe(plugins));
        string[] lines = [.. plugins.Stdout.Split('\n').Where(l => l.Contains(" erofs ", StringComparison.Ordinal))];
        output.WriteLine($"containerd {containerd.Version}: {(lines.Length == 0 ? "no erofs plugins" : string.Join(" | ", lines.Select(l => l.Trim())))}");
        Assert.All(lines, line => Assert.True(line.TrimEnd().EndsWith("ok", StringComparison.Ordinal), $"an erofs plugin did not load:\n{plugins.Stdout}"));
        return lines.Length > 0;
    }

    private async Task<CommandResult> RunAsync(string[] args)
    {
        CommandResult run = await containerd.CtrWithInputAsync(Namespace, null, args);
        output.WriteLine($"ctr {string.Join(' ', args.Take(2))} ... {args[^1]}: exit {run.ExitCode}");
        return run;
    }

    // Every committed layer file with its checksum, to prove the VM never wrote one.
    private Dictionary<string, string> LayerChecksums() =>
        Directory.Exists(SnapshotDirectory)
            ? Directory.EnumerateFiles(SnapshotDirectory, "layer.erofs", SearchOption.AllDirectories)
                .ToDictionary(file => file, file => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file))), StringComparer.Ordinal)
            : [];

    // The snapshot's upper directory, as containerd's own overlay mount of it names it.
    private async Task<string> UpperDirectoryAsync(string id)
    {
        CommandResult mounts = await containerd.CtrAsync(Namespace, "snapshots", "--snapshotter", Snapshotter, "mounts", "/mnt", id);
        Assert.True(mounts.ExitCode == 0, containerd.Describe(mounts));
        Match match = UpperDir().Match(mounts.Stdout);
        Assert.True(match.Success, $"no upperdir in: {mounts.Stdout}");
        return match.Groups[1].Value;
    }

    [GeneratedRegex(@"upperdir=([^,\s]+)")]
    private static partial Regex UpperDir();
}
