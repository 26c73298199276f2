using FirecrackerContainerd.Runtime.Config;

namespace FirecrackerContainerd.Runtime.Tests.Config;

public sealed class RuntimeConfigTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"fc-runtime-config-{Guid.NewGuid():N}.json");

    public void Dispose() => File.Delete(_path);

    [Fact]
    public void The_translation_cache_is_qemus_default_unless_set()
    {
        Assert.Equal(0, Load("").TcgTranslationCacheMib);
        Assert.Equal(32, Load("\"tcg_translation_cache_mib\": 32,").TcgTranslationCacheMib);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(4097)]
    public void A_translation_cache_size_out_of_range_is_refused_naming_the_key(int mib)
    {
        var e = Assert.Throws<InvalidOperationException>(() => Load($"\"tcg_translation_cache_mib\": {mib},"));
        Assert.Contains($"tcg_translation_cache_mib {mib} is not between 0 and 4096", e.Message, StringComparison.Ordinal);
        Assert.Contains(_path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_key_is_refused()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Load("\"tb_size\": 32,"));
        Assert.Contains("tb_size", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_root_drive_alone_is_a_guest_and_without_it_or_an_initrd_the_file_is_refused()
    {
        File.WriteAllText(_path, """{ "kernel_image_path": "/k", "root_drive_path": "/r/rootfs.ext4" }""");
        Assert.Equal("/r/rootfs.ext4", RuntimeConfig.Load(_path).RootDrivePath);

        File.WriteAllText(_path, """{ "kernel_image_path": "/k" }""");
        var e = Assert.Throws<InvalidOperationException>(() => RuntimeConfig.Load(_path));
        Assert.Contains("initrd_path and root_drive_path are both missing", e.Message, StringComparison.Ordinal);
    }

    private RuntimeConfig Load(string extra)
    {
        File.WriteAllText(_path, $$"""{ {{extra}} "kernel_image_path": "/k", "initrd_path": "/i" }""");
        return RuntimeConfig.Load(_path);
    }
}
