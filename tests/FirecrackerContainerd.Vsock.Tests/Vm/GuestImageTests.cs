using System.Diagnostics;
using System.Text.Json;
using FirecrackerContainerd.TestSupport;

namespace FirecrackerContainerd.Vsock.Tests.Vm;

/// <summary>What tools/image-builder produces (the build is shared with the VM tests and cached).</summary>
[Trait("Category", "Vm")]
public sealed class GuestImageTests
{
    [Fact]
    public async Task The_image_has_a_bzImage_an_ELF_vmlinux_a_zstd_initramfs_and_a_manifest_naming_every_package()
    {
        GuestImage image = await GuestImage.BuildAsync(agent: null, CancellationToken.None);

        byte[] vmlinuz = await File.ReadAllBytesAsync(image.Kernel);
        Assert.Equal("HdrS"u8.ToArray(), vmlinuz.AsSpan(0x202, 4).ToArray());
        await using (FileStream vmlinux = File.OpenRead(Path.Combine(image.Directory, "vmlinux")))
        {
            byte[] magic = new byte[4];
            await vmlinux.ReadExactlyAsync(magic);
            Assert.Equal(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }, magic);
        }
        await using (FileStream initrd = File.OpenRead(image.Initrd))
        {
            byte[] magic = new byte[4];
            await initrd.ReadExactlyAsync(magic);
            Assert.Equal(new byte[] { 0x28, 0xb5, 0x2f, 0xfd }, magic);
        }
        using JsonDocument manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(image.Directory, "manifest.json")));
        JsonElement packages = manifest.RootElement.GetProperty("packages");
        Assert.Equal(Environment.GetEnvironmentVariable("FC_GUEST_SUITE") ?? "trixie", manifest.RootElement.GetProperty("userlandSuite").GetString());
        foreach (string package in new[] { "busybox-static", "crun", "runc", "socat", "libc6" })
        {
            Assert.True(packages.TryGetProperty(package, out _), $"manifest lacks {package}");
        }
        Assert.StartsWith("linux-image-", manifest.RootElement.GetProperty("kernelPackage").GetString());
        string[] modules = manifest.RootElement.GetProperty("modules").EnumerateArray().Select(m => m.GetString()!).ToArray();
        // Each module the guest loads must be in the image (a missing one would read as position -1 and still
        // compare "before" every other), then in an order that loads each after what it needs.
        int Position(string name)
        {
            int at = Array.FindIndex(modules, m => m.EndsWith($"/{name}.ko", StringComparison.Ordinal));
            Assert.True(at >= 0, $"the image's module list lacks {name}: {string.Join(", ", modules)}");
            return at;
        }

        Assert.True(Position("virtio_ring") < Position("virtio"));
        Assert.True(Position("virtio") < Position("virtio_mmio"));
        Assert.True(Position("virtio") < Position("virtio_blk"));
        Assert.True(Position("vsock") < Position("vmw_vsock_virtio_transport_common"));
        Assert.True(Position("vmw_vsock_virtio_transport_common") < Position("vmw_vsock_virtio_transport"));
        Assert.True(Position("virtio") < Position("virtio_net"));
        Assert.True(Position("virtio") < Position("virtio_balloon"));
    }

    [Fact]
    public async Task Prune_keeps_the_image_just_used_and_the_most_recently_used_ones_and_removes_only_complete_images()
    {
        string images = Directory.CreateTempSubdirectory("fc-images-").FullName;
        try
        {
            // d1 is the oldest and the one a build returns now; "half" has no manifest (never complete).
            var start = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
            foreach ((string name, int age) in new[] { ("d1", 9), ("d2", 5), ("d3", 4), ("d4", 3), ("d5", 2), ("half", 10) })
            {
                string dir = Path.Combine(images, name);
                Directory.CreateDirectory(dir);
                if (name != "half")
                {
                    await File.WriteAllTextAsync(Path.Combine(dir, "manifest.json"), "{}");
                }

                Directory.SetLastWriteTimeUtc(dir, start.AddDays(-age));
            }

            Directory.CreateDirectory(Path.Combine(images, ".d6.tmp"));

            Assert.Equal(0, (await PruneAsync(images, "0", Path.Combine(images, "d1"))).Code);
            Assert.Equal(7, Directory.GetDirectories(images).Length);

            (int code, string stderr) = await PruneAsync(images, "2", Path.Combine(images, "d1"));

            Assert.True(code == 0, stderr);
            Assert.Equal([".d6.tmp", "d1", "d5", "half"], Directory.GetDirectories(images).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.Contains("removed the least recently used image", stderr, StringComparison.Ordinal);
            Assert.Equal(2, (await PruneAsync(images, "-1", Path.Combine(images, "d1"))).Code);
        }
        finally
        {
            Directory.Delete(images, recursive: true);
        }
    }

    private static async Task<(int Code, string Stderr)> PruneAsync(string images, string keep, string used)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(GuestImage.RepoRoot(), "tools", "image-builder", "prune"));
        start.ArgumentList.Add(images);
        start.ArgumentList.Add(keep);
        start.ArgumentList.Add(used);
        using Process process = Process.Start(start)!;
        string stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, stderr);
    }
}
