using FirecrackerContainerd.Agent.Pods;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>The guest's pod files, shared memory and volumes, on a temp directory with the tmpfs mount recorded.</summary>
public sealed class PodStoreTests : IDisposable
{
    private const string Sandbox = "0123abcd";
    private readonly TempDir _root = new();
    private readonly List<(string Source, string Target, ulong Bytes)> _mounts = [];
    private readonly List<string> _sysctls = [];
    private readonly PodStore _store;

    public PodStoreTests() => _store = new PodStore(
        _root.Path, (source, target, bytes) => _mounts.Add((source, target, bytes)), (name, value) => _sysctls.Add($"{name}={value}"));

    public void Dispose() => _root.Dispose();

    [Fact]
    public void Prepare_makes_the_pods_directories_and_mounts_its_shared_memory_once()
    {
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox, ShmSizeBytes = 1 << 20 });
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox });

        string pod = _root.Combine(Sandbox);
        Assert.Equal(pod, _store.PodDirectory(Sandbox));
        Assert.True(Directory.Exists(Path.Combine(pod, "files")));
        Assert.True(Directory.Exists(Path.Combine(pod, "volumes")));
        Assert.Equal([("shm", Path.Combine(pod, "shm"), 1UL << 20)], _mounts);
    }

    [Fact]
    public void Shared_memory_without_a_size_gets_containerds_default()
    {
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox });

        Assert.Equal(PodStore.DefaultShmBytes, Assert.Single(_mounts).Bytes);
    }

    [Fact]
    public async Task A_file_is_replaced_whole_with_its_mode()
    {
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox });

        await _store.PutFileAsync(new PutPodFileRequest { SandboxId = Sandbox, Name = "etc-hosts", Content = ByteString.CopyFromUtf8("old\n") }, CancellationToken.None);
        await _store.PutFileAsync(new PutPodFileRequest { SandboxId = Sandbox, Name = "etc-hosts", Content = ByteString.CopyFromUtf8("127.0.0.1 localhost\n"), Mode = 0x180 }, CancellationToken.None);

        string file = _root.Combine(Sandbox, "files", "etc-hosts");
        Assert.Equal("127.0.0.1 localhost\n", await File.ReadAllTextAsync(file));
        Assert.Equal((UnixFileMode)0x180, File.GetUnixFileMode(file));
        Assert.Equal(["etc-hosts"], Directory.GetFiles(_root.Combine(Sandbox, "files")).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("a..b")]
    [InlineData("")]
    [InlineData("tab\tname")]
    public async Task A_name_that_could_leave_its_directory_or_hide_is_refused(string name)
    {
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox });

        var file = await Assert.ThrowsAsync<TtrpcException>(() =>
            _store.PutFileAsync(new PutPodFileRequest { SandboxId = Sandbox, Name = name, Content = ByteString.Empty }, CancellationToken.None));
        var volume = Assert.Throws<TtrpcException>(() => _store.EnsureVolume(new EnsurePodVolumeRequest { SandboxId = Sandbox, Name = name }));

        Assert.Equal(StatusCode.InvalidArgument, file.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, volume.StatusCode);
        Assert.Empty(Directory.GetFileSystemEntries(_root.Combine(Sandbox, "files")));
    }

    [Fact]
    public async Task A_file_too_large_or_with_more_than_permission_bits_is_refused()
    {
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox });

        var large = await Assert.ThrowsAsync<TtrpcException>(() => _store.PutFileAsync(
            new PutPodFileRequest { SandboxId = Sandbox, Name = "big", Content = ByteString.CopyFrom(new byte[PodStore.MaxFileBytes + 1]) }, CancellationToken.None));
        var setuid = await Assert.ThrowsAsync<TtrpcException>(() => _store.PutFileAsync(
            new PutPodFileRequest { SandboxId = Sandbox, Name = "suid", Content = ByteString.Empty, Mode = 0x9ED }, CancellationToken.None));

        Assert.Equal(StatusCode.InvalidArgument, large.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, setuid.StatusCode);
    }

    [Fact]
    public void A_volume_is_made_once_and_writable_by_every_user()
    {
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox });
        _store.EnsureVolume(new EnsurePodVolumeRequest { SandboxId = Sandbox, Name = "cache" });
        File.WriteAllText(_root.Combine(Sandbox, "volumes", "cache", "kept"), "x");
        _store.EnsureVolume(new EnsurePodVolumeRequest { SandboxId = Sandbox, Name = "cache" });

        Assert.True(File.Exists(_root.Combine(Sandbox, "volumes", "cache", "kept")));
        Assert.Equal((UnixFileMode)0x1FF, File.GetUnixFileMode(_root.Combine(Sandbox, "volumes", "cache")));
    }

    [Fact]
    public async Task Nothing_is_put_into_a_pod_that_was_not_prepared_or_has_a_bad_id()
    {
        var unprepared = await Assert.ThrowsAsync<TtrpcException>(() =>
            _store.PutFileAsync(new PutPodFileRequest { SandboxId = Sandbox, Name = "x", Content = ByteString.Empty }, CancellationToken.None));
        var badId = Assert.Throws<TtrpcException>(() => _store.Prepare(new PreparePodRequest { SandboxId = "../x" }));

        Assert.Equal(StatusCode.FailedPrecondition, unprepared.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, badId.StatusCode);
        Assert.Empty(Directory.GetFileSystemEntries(_root.Path));
    }

    [Fact]
    public void Network_sysctls_are_set_in_name_order()
    {
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox });

        _store.SetNetworkSysctls(new SetPodNetworkSysctlsRequest
        {
            SandboxId = Sandbox,
            Sysctls = { ["net.ipv4.ping_group_range"] = "0 2147483647", ["net.ipv4.ip_unprivileged_port_start"] = "0" },
        });

        Assert.Equal(["net.ipv4.ip_unprivileged_port_start=0", "net.ipv4.ping_group_range=0 2147483647"], _sysctls);
    }

    [Theory]
    [InlineData("kernel.shmmax", "1", "is not a network sysctl name")]
    [InlineData("net.ipv4..x", "1", "is not a network sysctl name")]
    [InlineData("net/../../kernel/core_pattern", "1", "is not a network sysctl name")]
    [InlineData("net.", "1", "is not a network sysctl name")]
    [InlineData("net.core.somaxconn", "1\n2", "the value is not up to 256 printable characters")]
    public void A_sysctl_that_is_not_the_pods_network_or_a_value_that_is_not_printable_is_refused_before_any_is_set(string name, string value, string message)
    {
        _store.Prepare(new PreparePodRequest { SandboxId = Sandbox });

        var e = Assert.Throws<TtrpcException>(() => _store.SetNetworkSysctls(new SetPodNetworkSysctlsRequest
        {
            SandboxId = Sandbox,
            Sysctls = { ["net.core.somaxconn"] = "1024", [name] = value },
        }));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Empty(_sysctls);
    }

    [Fact]
    public void A_sysctl_the_kernel_refuses_is_InvalidArgument_naming_it()
    {
        var store = new PodStore(_root.Path, (_, _, _) => { }, (_, _) => throw new IOException("Invalid argument"));
        store.Prepare(new PreparePodRequest { SandboxId = Sandbox });

        var e = Assert.Throws<TtrpcException>(() => store.SetNetworkSysctls(new SetPodNetworkSysctlsRequest { SandboxId = Sandbox, Sysctls = { ["net.core.somaxconn"] = "x" } }));

        Assert.Equal($"pod {Sandbox}: sysctl net.core.somaxconn=x: Invalid argument", e.Message);
    }
}
