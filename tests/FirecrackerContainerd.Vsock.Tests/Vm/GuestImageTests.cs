using System.Text.Json;

namespace FirecrackerContainerd.Vsock.Tests.Vm;

/// <summary>What tools/image-builder produces (the build is shared with the VM tests and cached).</summary>
[Trait("Category", "Vm")]
public sealed class GuestImageTests
{
    [Fact]
    public async Task The_image_has_a_bzImage_an_ELF_vmlinux_a_zstd_initramfs_and_a_manifest_naming_every_package()
    {
        GuestImage image = await GuestImage.GetAsync();

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
        foreach (string package in new[] { "busybox-static", "crun", "runc", "socat", "libc6" })
        {
            Assert.True(packages.TryGetProperty(package, out _), $"manifest lacks {package}");
        }
        Assert.StartsWith("linux-image-", manifest.RootElement.GetProperty("kernelPackage").GetString());
        string[] modules = manifest.RootElement.GetProperty("modules").EnumerateArray().Select(m => m.GetString()!).ToArray();
        int Position(string name) => Array.FindIndex(modules, m => m.EndsWith($"/{name}.ko", StringComparison.Ordinal));
        Assert.True(Position("virtio_ring") < Position("virtio"));
        Assert.True(Position("virtio") < Position("virtio_mmio"));
        Assert.True(Position("vsock") < Position("vmw_vsock_virtio_transport_common"));
        Assert.True(Position("vmw_vsock_virtio_transport_common") < Position("vmw_vsock_virtio_transport"));
        Assert.True(Position("virtio_ring") >= 0);
    }
}
