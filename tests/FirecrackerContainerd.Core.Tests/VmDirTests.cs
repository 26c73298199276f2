using System.Text;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

public sealed class VmDirTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    [Theory]
    [InlineData("", "", "invalid namespace: identifier must not be empty")]
    [InlineData("/", "", "invalid namespace: identifier \"/\" must match")]
    [InlineData("?", "", "invalid namespace: identifier \"?\" must match")]
    [InlineData("*", "", "invalid namespace: identifier \"*\" must match")]
    [InlineData(",", "", "invalid namespace: identifier \",\" must match")]
    [InlineData("test", "", "invalid vm id: identifier must not be empty")]
    [InlineData("test", "/", "invalid vm id: identifier \"/\" must match")]
    [InlineData("test", "?", "invalid vm id: identifier \"?\" must match")]
    [InlineData("test", "*", "invalid vm id: identifier \"*\" must match")]
    [InlineData("test", ",", "invalid vm id: identifier \",\" must match")]
    [InlineData("test", "..", "invalid vm id: identifier \"..\" must match")]
    [InlineData("..", "x", "invalid namespace: identifier \"..\" must match")]
    public void ShimDir_rejects_invalid_ids_with_the_seeds_messages(string ns, string id, string message)
    {
        var e = Assert.Throws<InvalidIdentifierException>(() => VmDir.ShimDir(_tmp.Path, ns, id));
        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ns", "1", "ns#1")]
    [InlineData("test-123", "123-456", "test-123#123-456")]
    [InlineData("test.123", "123.456", "test.123#123.456")]
    [InlineData("aaa", "bbb-ccc", "aaa#bbb-ccc")]
    [InlineData("aaa-bbb", "ccc", "aaa-bbb#ccc")]
    public void ShimDir_joins_namespace_and_vm_id_under_the_base(string ns, string id, string name)
    {
        Assert.Equal(Path.Combine(_tmp.Path, name), VmDir.ShimDir(_tmp.Path, ns, id).RootPath);
    }

    [Fact]
    public void ShimDir_resolves_symlinks_in_the_base_dir()
    {
        string real = Directory.CreateDirectory(_tmp.Combine("real")).FullName;
        string link = _tmp.Combine("link");
        File.CreateSymbolicLink(link, real);
        string chained = _tmp.Combine("chained");
        File.CreateSymbolicLink(chained, link);

        Assert.Equal(Path.Combine(real, "ns#vm"), VmDir.ShimDir(chained, "ns", "vm").RootPath);
        Assert.Equal(Path.Combine(real, "ns#vm"), VmDir.ShimDir(_tmp.Combine("link", "..", "real") + "/", "ns", "vm").RootPath);
    }

    [Fact]
    public void ShimDir_fails_when_the_base_dir_does_not_exist()
    {
        string missing = _tmp.Combine("missing");
        var e = Assert.Throws<UnixIOException>(() => VmDir.ShimDir(missing, "ns", "vm"));
        Assert.Equal($"failed evaluating any symlinks in path \"{missing}\": lstat {missing}: no such file or directory", e.Message);
    }

    [Fact]
    public void Members_name_the_upstream_files()
    {
        var dir = new VmDir("/run/fc/ns#vm");
        Assert.Equal("/run/fc/ns#vm", dir.RootPath);
        Assert.Equal("/run/fc/ns#vm/address", dir.AddrFilePath);
        Assert.Equal("/run/fc/ns#vm/log", dir.LogFifoPath);
        Assert.Equal("/run/fc/ns#vm/firecracker.sock", dir.FirecrackerSockPath);
        Assert.Equal("/run/fc/ns#vm/firecracker.vsock", dir.FirecrackerVSockPath);
        Assert.Equal("/run/fc/ns#vm/fc-logs.fifo", dir.FirecrackerLogFifoPath);
        Assert.Equal("/run/fc/ns#vm/fc-metrics.fifo", dir.FirecrackerMetricsFifoPath);
    }

    [Fact]
    public void Mkdir_creates_the_directory_private_and_is_a_no_op_when_it_exists()
    {
        var dir = new VmDir(_tmp.Combine("a", "b", "ns#vm"));
        dir.Mkdir();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            File.GetUnixFileMode(dir.RootPath));
        File.WriteAllText(Path.Combine(dir.RootPath, "keep"), "x");
        dir.Mkdir();
        Assert.True(File.Exists(Path.Combine(dir.RootPath, "keep")));
    }

    [Fact]
    public void Mkdir_fails_when_a_file_is_in_the_way()
    {
        string file = _tmp.Combine("file");
        File.WriteAllText(file, "x");
        Assert.ThrowsAny<IOException>(() => new VmDir(file).Mkdir());
    }

    [Fact]
    public void BundleLink_cleans_the_path_like_filepath_Join()
    {
        var root = new VmDir("/root/");
        Assert.Equal("/root/1", root.BundleLink("1").RootPath);
        Assert.Equal("/root/test-1", root.BundleLink("test-1").RootPath);
    }

    [Theory]
    [InlineData("")]
    [InlineData("id?")]
    [InlineData("*")]
    [InlineData("id/1")]
    [InlineData("id\\")]
    [InlineData("..")]
    public void BundleLink_rejects_invalid_container_ids(string id)
    {
        var e = Assert.Throws<InvalidIdentifierException>(() => new VmDir("/root/").BundleLink(id));
        Assert.StartsWith("invalid container id \"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateBundleLink_points_from_the_vm_dir_to_the_bundle()
    {
        var (dir, bundle) = MakeVmDirAndBundle();
        dir.CreateBundleLink("c1", bundle);

        string link = Path.Combine(dir.RootPath, "c1");
        Assert.Equal(bundle.RootPath, new FileInfo(link).LinkTarget);
    }

    [Fact]
    public void CreateBundleLink_fails_with_both_paths_when_the_link_exists()
    {
        var (dir, bundle) = MakeVmDirAndBundle();
        dir.CreateBundleLink("c1", bundle);

        var e = Assert.Throws<UnixIOException>(() => dir.CreateBundleLink("c1", bundle));
        string link = Path.Combine(dir.RootPath, "c1");
        Assert.Equal(
            $"failed to create bundle symlink from \"{link}\"->\"{bundle.RootPath}\": symlink {bundle.RootPath} {link}: file exists",
            e.Message);
    }

    [Fact]
    public void CreateAddressLink_points_from_the_bundle_to_the_vm_dirs_address_file()
    {
        var (dir, bundle) = MakeVmDirAndBundle();
        dir.CreateBundleLink("c1", bundle);
        dir.CreateAddressLink("c1");
        dir.WriteAddress("unix:///run/containerd/s/abc");

        Assert.Equal(dir.AddrFilePath, new FileInfo(bundle.AddrFilePath).LinkTarget);
        Assert.Equal("unix:///run/containerd/s/abc", File.ReadAllText(bundle.AddrFilePath));
    }

    [Fact]
    public void CreateAddressLink_fails_with_both_paths_when_the_bundle_has_an_address_file()
    {
        var (dir, bundle) = MakeVmDirAndBundle();
        dir.CreateBundleLink("c1", bundle);
        File.WriteAllText(bundle.AddrFilePath, "old");

        var e = Assert.Throws<UnixIOException>(() => dir.CreateAddressLink("c1"));
        string linkAddr = Path.Combine(dir.RootPath, "c1", "address");
        Assert.Equal(
            $"failed to create shim address file symlink from \"{linkAddr}\"->\"{dir.AddrFilePath}\": symlink {dir.AddrFilePath} {linkAddr}: file exists",
            e.Message);
    }

    [Fact]
    public void CreateShimLogFifoLink_points_from_the_vm_dir_to_the_bundles_fifo()
    {
        var (dir, bundle) = MakeVmDirAndBundle();
        dir.CreateBundleLink("c1", bundle);
        Fifo.Create(bundle.LogFifoPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        dir.CreateShimLogFifoLink("c1");

        Assert.Equal(Path.Combine(dir.RootPath, "c1", "log"), new FileInfo(dir.LogFifoPath).LinkTarget);
        Assert.True(Fifo.IsFifo(dir.LogFifoPath));

        var e = Assert.Throws<UnixIOException>(() => dir.CreateShimLogFifoLink("c1"));
        Assert.StartsWith($"failed to create shim log fifo symlink from \"{dir.LogFifoPath}\"->", e.Message, StringComparison.Ordinal);
        Assert.EndsWith(": file exists", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenLogFifo_returns_at_once_and_delivers_once_containerd_reads()
    {
        var (dir, bundle) = MakeVmDirAndBundle();
        dir.CreateBundleLink("c1", bundle);
        Fifo.Create(bundle.LogFifoPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        dir.CreateShimLogFifoLink("c1");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        await using FifoStream log = await dir.OpenLogFifoAsync(timeout.Token);
        Assert.False(log.WhenOpen.IsCompleted); // nobody reads yet: the open waits in the background
        Task write = log.WriteAsync(Encoding.UTF8.GetBytes("shim started\n"), timeout.Token).AsTask();

        await using FifoStream reader = await Fifo.OpenAsync(bundle.LogFifoPath, FifoMode.Read, 0, timeout.Token);
        await write;
        var buffer = new byte[64];
        int n = await reader.ReadAsync(buffer, timeout.Token);
        Assert.Equal("shim started\n", Encoding.UTF8.GetString(buffer, 0, n));
    }

    [Fact]
    public void WriteAddress_writes_the_address_without_a_newline()
    {
        var (dir, _) = MakeVmDirAndBundle();
        dir.WriteAddress("unix:///run/containerd/s/0123");
        Assert.Equal("unix:///run/containerd/s/0123"u8.ToArray(), File.ReadAllBytes(dir.AddrFilePath));
        Assert.Single(Directory.GetFiles(dir.RootPath));
    }

    [Fact]
    public void ShimDir_never_escapes_the_base_for_generated_hostile_ids()
    {
        var random = new Random(FuzzSeed.Choose(output, 20261127));
        string[] pieces = ["a", "Z", "9", ".", "..", "_", "-", "/", "\\", "\0", "\n", " ", "#", "%2e", "\u2215", "\uff0f", "\u2024", "\u00e9", "~", "*", ":"];
        string resolvedBase = Path.GetFullPath(_tmp.Path);
        int accepted = 0;
        for (int i = 0; i < 20000; i++)
        {
            string ns = Generate(random, pieces);
            string id = Generate(random, pieces);
            VmDir dir;
            try
            {
                dir = VmDir.ShimDir(_tmp.Path, ns, id);
            }
            catch (InvalidIdentifierException)
            {
                continue;
            }

            accepted++;
            Assert.Equal(resolvedBase, Path.GetDirectoryName(dir.RootPath));
            Assert.Equal(ns + "#" + id, Path.GetFileName(dir.RootPath));
            Assert.DoesNotContain('/', ns + id);
            Assert.NotEqual("..", ns);
            Assert.NotEqual("..", id);
        }

        Assert.True(accepted > 100, $"the generator produced only {accepted} valid pairs");
    }

    private static string Generate(Random random, string[] pieces)
    {
        int count = random.Next(0, 8);
        var sb = new StringBuilder();
        for (int i = 0; i < count; i++)
        {
            // Mostly alphanumerics, so that a fair share of the pairs pass and the accepted path is checked too.
            sb.Append(random.Next(3) == 0 ? pieces[random.Next(pieces.Length)] : pieces[random.Next(3)]);
        }

        return sb.ToString();
    }

    private (VmDir Dir, BundleDir Bundle) MakeVmDirAndBundle()
    {
        VmDir dir = VmDir.ShimDir(_tmp.Path, "ns", "vm");
        dir.Mkdir();
        var bundle = new BundleDir(Directory.CreateDirectory(_tmp.Combine("bundle")).FullName);
        return (dir, bundle);
    }
}
