using System.Text;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

public sealed class BundleDirTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void Members_name_the_bundle_files()
    {
        var bundle = new BundleDir("/run/containerd/io.containerd.runtime.v2.task/ns/c1");
        Assert.Equal("/run/containerd/io.containerd.runtime.v2.task/ns/c1/address", bundle.AddrFilePath);
        Assert.Equal("/run/containerd/io.containerd.runtime.v2.task/ns/c1/log", bundle.LogFifoPath);
        Assert.Equal("/run/containerd/io.containerd.runtime.v2.task/ns/c1/rootfs", bundle.RootfsPath);
        Assert.Equal("/run/containerd/io.containerd.runtime.v2.task/ns/c1/config.json", bundle.OCIConfigPath);
    }

    [Fact]
    public void VMBundleDir_is_under_container_in_the_guest()
    {
        Assert.Equal("/container/task-1", BundleDir.VMBundleDir("task-1").RootPath);
        Assert.Throws<InvalidIdentifierException>(() => BundleDir.VMBundleDir("../etc"));
    }

    [Fact]
    public void VMBundleDir_under_another_root_keeps_the_guest_layout()
    {
        BundleDir bundle = BundleDir.VMBundleDir("task-1", "/tmp/agent/bundles/");
        Assert.Equal("/tmp/agent/bundles/task-1", bundle.RootPath);
        Assert.Equal("/tmp/agent/bundles/task-1/rootfs", bundle.RootfsPath);
        Assert.Throws<InvalidIdentifierException>(() => BundleDir.VMBundleDir("../etc", "/tmp/agent/bundles"));
    }

    [Theory]
    [InlineData("{\"annotations\":{\"aws.firecracker.vm.id\":\"vm-1\"}}", "vm-1")]
    [InlineData("{\"annotations\":{\"other\":\"x\"}}", null)]
    [InlineData("{\"ociVersion\":\"1.0.2\"}", null)]
    [InlineData("{\"annotations\":null}", null)]
    public void VMID_reads_the_annotation(string json, string? expected)
    {
        var bundle = new BundleDir(_tmp.Path);
        bundle.WriteOCIConfig(Encoding.UTF8.GetBytes(json));
        Assert.Equal(expected, bundle.VMID());
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("{\"annotations\":[1]}")]
    [InlineData("{\"annotations\":{\"aws.firecracker.vm.id\":7}}")]
    public void VMID_reports_a_malformed_config_with_its_path(string json)
    {
        var bundle = new BundleDir(_tmp.Path);
        bundle.WriteOCIConfig(Encoding.UTF8.GetBytes(json));
        var e = Assert.Throws<InvalidDataException>(() => bundle.VMID());
        Assert.StartsWith($"failed to parse Annotations section of OCI config file {bundle.OCIConfigPath}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadOCIConfig_names_the_missing_file()
    {
        var bundle = new BundleDir(_tmp.Path);
        var e = Assert.Throws<IOException>(() => bundle.ReadOCIConfig());
        Assert.StartsWith($"failed to read OCI config file {bundle.OCIConfigPath}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WriteOCIConfig_replaces_the_file_and_leaves_no_temp_file()
    {
        var bundle = new BundleDir(_tmp.Path);
        bundle.WriteOCIConfig("{\"a\":1}"u8);
        bundle.WriteOCIConfig("{\"b\":2}"u8);
        Assert.Equal("{\"b\":2}"u8.ToArray(), bundle.ReadOCIConfig());
        Assert.Single(Directory.GetFiles(_tmp.Path));
    }
}

public class GoPathTests
{
    [Theory]
    [InlineData("/root/", "/root")]
    [InlineData("a//b/./c/..", "a/b")]
    [InlineData("/../x", "/x")]
    [InlineData("../x", "../x")]
    [InlineData("", ".")]
    [InlineData("a/..", ".")]
    public void Clean_matches_go(string path, string expected)
    {
        Assert.Equal(expected, GoPath.Clean(path));
    }

    [Fact]
    public void Join_skips_empty_elements_and_cleans()
    {
        Assert.Equal("/root/1", GoPath.Join("/root/", "1"));
        Assert.Equal("a/c", GoPath.Join("a", "", "b/../c"));
        Assert.Equal(string.Empty, GoPath.Join("", ""));
    }
}
