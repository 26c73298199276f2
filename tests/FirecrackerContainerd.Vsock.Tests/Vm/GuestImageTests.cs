using System.Diagnostics;
using System.Text.Json;
using FirecrackerContainerd.TestSupport;

namespace FirecrackerContainerd.Vsock.Tests.Vm;

/// <summary>What tools/image-builder produces (the build is shared with the VM tests and cached).</summary>
[Trait("Category", "Vm")]
public sealed class GuestImageTests
{
    [Fact]
    public async Task Our_kernels_image_has_a_PVH_vmlinux_an_uncompressed_initramfs_without_modules_or_runc_the_same_as_a_root_drive_and_a_manifest()
    {
        GuestImage image = await GuestImage.BuildAsync(agent: null, GuestImage.OurKernel, CancellationToken.None);

        byte[] vmlinux = await File.ReadAllBytesAsync(image.Kernel);
        Assert.True(ElfNotes.HasPvhEntry(vmlinux), $"{image.Kernel} has no PVH entry note (Xen, XEN_ELFNOTE_PHYS32_ENTRY)");
        Assert.False(File.Exists(Path.Combine(image.Directory, "vmlinuz")), "our kernel comes as a vmlinux only");
        Dictionary<string, int> files = NewcArchive.Read(await File.ReadAllBytesAsync(image.Initrd));
        foreach (string path in new[] { "init", "bin/busybox", "usr/bin/crun", "usr/bin/socat", "lib64/ld-linux-x86-64.so.2", "etc/fc-modules" })
        {
            Assert.True(files.ContainsKey(path), $"the initramfs lacks {path}");
        }

        Assert.DoesNotContain("usr/sbin/runc", files.Keys);
        Assert.Equal(0, files["etc/fc-modules"]);
        Assert.DoesNotContain(files.Keys, path => path.EndsWith(".ko", StringComparison.Ordinal));

        using JsonDocument manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(image.Directory, "manifest.json")));
        JsonElement root = manifest.RootElement;
        Assert.Equal(("ours", "linux-source-6.1"), (root.GetProperty("kernel").GetString(), root.GetProperty("kernelPackage").GetString()));
        Assert.Matches(@"^6\.1\.[0-9]+-fc$", root.GetProperty("kernelRelease").GetString());
        Assert.Empty(root.GetProperty("modules").EnumerateArray());
        Assert.Equal(Environment.GetEnvironmentVariable("FC_GUEST_SUITE") ?? "trixie", root.GetProperty("userlandSuite").GetString());
        JsonElement packages = root.GetProperty("packages");
        foreach (string package in new[] { "linux-source-6.1", "busybox-static", "crun", "socat", "libc6" })
        {
            Assert.True(packages.TryGetProperty(package, out _), $"manifest lacks {package}");
        }

        Assert.False(packages.TryGetProperty("runc", out _), "the image carries runc");
        Assert.Equal(["initrd.img", "rootfs.ext4", "vmlinux"], root.GetProperty("files").EnumerateObject().Select(f => f.Name).Order(StringComparer.Ordinal));

        // The same files as a read-only root drive, whose /sbin/init (what the kernel runs from a root file system) is /init.
        Assert.NotNull(image.RootDrive);
        (string stat, _) = await Tool.RunAsync("debugfs", ["-R", "stat /sbin/init", image.RootDrive], "e2fsprogs", CancellationToken.None);
        Assert.Contains("Fast link dest: \"/init\"", stat, StringComparison.Ordinal);
        (string listing, _) = await Tool.RunAsync("debugfs", ["-R", "ls -p /usr/bin", image.RootDrive], "e2fsprogs", CancellationToken.None);
        Assert.Contains("/crun/", listing, StringComparison.Ordinal);
        (string features, _) = await Tool.RunAsync("debugfs", ["-R", "features", image.RootDrive], "e2fsprogs", CancellationToken.None);
        Assert.DoesNotContain("has_journal", features, StringComparison.Ordinal);

        // The kernel's configuration beside it has every option of the fragment it was built from.
        string config = await File.ReadAllTextAsync(Path.Combine(image.Directory, "kernel.config"));
        Assert.Contains("CONFIG_PVH=y\n", config, StringComparison.Ordinal);
        Assert.Contains("# CONFIG_MODULES is not set\n", config, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_debian_image_has_a_bzImage_its_ELF_vmlinux_and_the_modules_in_load_order()
    {
        GuestImage image = await GuestImage.BuildAsync(agent: null, GuestImage.DebianKernel, CancellationToken.None);
        Assert.Null(image.RootDrive); // its virtio and ext4 drivers are modules, loaded from the initramfs

        byte[] vmlinuz = await File.ReadAllBytesAsync(Path.Combine(image.Directory, "vmlinuz"));
        Assert.Equal("HdrS"u8.ToArray(), vmlinuz.AsSpan(0x202, 4).ToArray());
        Assert.True(ElfNotes.HasPvhEntry(await File.ReadAllBytesAsync(image.Kernel)), "Debian's vmlinux has no PVH entry note");
        Dictionary<string, int> files = NewcArchive.Read(await File.ReadAllBytesAsync(image.Initrd));
        using JsonDocument manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(image.Directory, "manifest.json")));
        Assert.Equal("debian", manifest.RootElement.GetProperty("kernel").GetString());
        Assert.StartsWith("linux-image-", manifest.RootElement.GetProperty("kernelPackage").GetString());
        string[] modules = manifest.RootElement.GetProperty("modules").EnumerateArray().Select(m => m.GetString()!).ToArray();

        // Each module the guest loads must be in the image (a missing one would read as position -1 and still
        // compare "before" every other), then in an order that loads each after what it needs.
        int Position(string name)
        {
            int at = Array.FindIndex(modules, m => m.EndsWith($"/{name}.ko", StringComparison.Ordinal));
            Assert.True(at >= 0, $"the image's module list lacks {name}: {string.Join(", ", modules)}");
            Assert.True(files.ContainsKey($"lib/modules/{modules[at]}"), $"the initramfs lacks lib/modules/{modules[at]}");
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
    public async Task Build_kernel_fails_naming_each_option_Kconfig_dropped()
    {
        // PVH depends on HYPERVISOR_GUEST, which this fragment leaves off: Kconfig drops PVH without a word.
        string fragment = Path.Combine(Directory.CreateTempSubdirectory("fc-kconfig-").FullName, "broken.config");
        await File.WriteAllTextAsync(fragment, "CONFIG_64BIT=y\nCONFIG_PVH=y\n# CONFIG_HYPERVISOR_GUEST is not set\nCONFIG_TTY=y\n");
        try
        {
            var start = new ProcessStartInfo(Path.Combine(GuestImage.RepoRoot(), "tools", "image-builder", "build-kernel"))
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            foreach (string arg in new[] { "--options", fragment, "--check-only" })
            {
                start.ArgumentList.Add(arg);
            }

            using Process process = Process.Start(start)!;
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            string stderr = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();

            Assert.True(process.ExitCode == 1, $"build-kernel exited with {process.ExitCode}:\n{stderr}");
            Assert.Contains("did not keep 1 option(s)", stderr, StringComparison.Ordinal);
            Assert.Contains("CONFIG_PVH=y (got: absent)", stderr, StringComparison.Ordinal);
            Assert.Equal(string.Empty, await stdout);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(fragment)!, recursive: true);
        }
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
