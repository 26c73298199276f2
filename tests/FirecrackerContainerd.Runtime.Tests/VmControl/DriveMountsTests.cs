using System.Collections.Immutable;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Runtime.VmControl;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Runtime.Tests.VmControl;

public sealed class DriveMountsTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("drivemounts-");
    private readonly string _image;

    public DriveMountsTests()
    {
        _image = Path.Combine(_dir.FullName, "data.img");
        File.WriteAllBytes(_image, new byte[4096]);
    }

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void A_valid_read_only_mount_becomes_a_read_only_drive_mounted_ro()
    {
        VmDriveMount mount = Assert.Single(DriveMounts.Validate("vm1", [Mount()], "qemu"));

        Assert.Equal("drivemount0", mount.DriveId);
        Assert.Equal(_image, mount.HostPath);
        Assert.Equal("/data", mount.VmPath);
        Assert.Equal("ext4", mount.FilesystemType);
        Assert.False(mount.IsWritable);
        Assert.Equal(["noatime", "ro"], mount.Options.ToArray());
        Assert.Equal(DriveCacheType.Unsafe, mount.CacheType);
    }

    [Fact]
    public void A_read_only_mount_drops_rw_and_names_ro_once()
    {
        FirecrackerDriveMount request = Mount();
        request.Options.Add("rw");
        request.Options.Add("ro");

        Assert.Equal(["noatime", "ro"], Assert.Single(DriveMounts.Validate("vm1", [request], "qemu")).Options.ToArray());
    }

    [Fact]
    public void A_writable_mount_keeps_its_options_and_takes_Writeback_caching()
    {
        FirecrackerDriveMount request = Mount();
        request.IsWritable = true;
        request.CacheType = "Writeback";

        VmDriveMount mount = Assert.Single(DriveMounts.Validate("vm1", [request], "qemu"));

        Assert.True(mount.IsWritable);
        Assert.Equal(["noatime"], mount.Options.ToArray());
        Assert.Equal(DriveCacheType.Writeback, mount.CacheType);
    }

    [Fact]
    public void Drive_ids_are_numbered_and_never_those_of_container_stub_drives()
    {
        FirecrackerDriveMount second = Mount();
        second.VMPath = "/data/inner";

        ImmutableArray<VmDriveMount> mounts = DriveMounts.Validate("vm1", [Mount(), second], "qemu");

        Assert.Equal(["drivemount0", "drivemount1"], mounts.Select(m => m.DriveId));
        Assert.All(mounts, m => Assert.DoesNotMatch("^stub[0-9]+$", m.DriveId));
        Assert.All(mounts, m => Assert.Matches(MachineSpecValidatorIdPattern, m.DriveId));
    }

    [Fact]
    public void No_drive_mounts_is_valid()
    {
        Assert.Empty(DriveMounts.Validate("vm1", [], "qemu"));
    }

    [Theory]
    [InlineData("", "DriveMounts[0].HostPath")]
    [InlineData("relative/data.img", "DriveMounts[0].HostPath")]
    [InlineData("/nonexistent/data.img", "DriveMounts[0].HostPath")]
    [InlineData("/tmp", "is neither a regular file nor a block device")]
    [InlineData("/dev/null", "is neither a regular file nor a block device")]
    public void HostPath_must_be_an_existing_regular_file_or_block_device(string hostPath, string expected)
    {
        FirecrackerDriveMount request = Mount();
        request.HostPath = hostPath;

        AssertInvalid(expected, request);
    }

    [Theory]
    [InlineData("")]
    [InlineData("data")]
    [InlineData("/")]
    [InlineData("/data/../etc")]
    [InlineData("/data/./x")]
    [InlineData("/data//x")]
    [InlineData("/data/")]
    [InlineData("/da\nta")]
    [InlineData("/container")]
    [InlineData("/container/c1/rootfs")]
    [InlineData("/run/fc-metadata")]
    [InlineData("/run/fc-metadata/x")]
    [InlineData("/proc/x")]
    public void VMPath_must_be_absolute_normalised_and_outside_the_agents_trees(string vmPath)
    {
        FirecrackerDriveMount request = Mount();
        request.VMPath = vmPath;

        AssertInvalid("DriveMounts[0].VMPath", request);
    }

    [Theory]
    [InlineData("/containers")]
    [InlineData("/run/fc-metadata2")]
    [InlineData("/mnt/data")]
    public void VMPath_may_share_a_prefix_with_a_reserved_tree(string vmPath)
    {
        FirecrackerDriveMount request = Mount();
        request.VMPath = vmPath;

        Assert.Equal(vmPath, Assert.Single(DriveMounts.Validate("vm1", [request], "qemu")).VmPath);
    }

    [Fact]
    public void VMPath_must_be_unique_among_the_mounts()
    {
        AssertInvalid("DriveMounts[1].VMPath \"/data\" is used by an earlier drive mount", Mount(), Mount());
    }

    [Theory]
    [InlineData("")]
    [InlineData("EXT4")]
    [InlineData("ext4 -o")]
    [InlineData("fuse.sshfs")]
    [InlineData("../ext4")]
    public void FilesystemType_is_required_and_a_simple_name(string type)
    {
        FirecrackerDriveMount request = Mount();
        request.FilesystemType = type;

        AssertInvalid("DriveMounts[0].FilesystemType", request);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ro,exec")]
    [InlineData("data=ordered\n")]
    [InlineData("a\0b")]
    public void Options_are_single_options_without_commas_or_control_characters(string option)
    {
        FirecrackerDriveMount request = Mount();
        request.Options.Add(option);

        AssertInvalid("DriveMounts[0].Options[1]", request);
    }

    [Fact]
    public void Too_many_options_are_refused()
    {
        FirecrackerDriveMount request = Mount();
        request.Options.Add(Enumerable.Repeat("noatime", DriveMounts.MaxOptions));

        AssertInvalid("DriveMounts[0].Options holds 33 options", request);
    }

    [Theory]
    [InlineData("unsafe")]
    [InlineData("None")]
    [InlineData("Writethrough")]
    public void CacheType_is_empty_Unsafe_or_Writeback(string cache)
    {
        FirecrackerDriveMount request = Mount();
        request.CacheType = cache;

        AssertInvalid("DriveMounts[0].CacheType", request);
    }

    [Fact]
    public void More_than_the_limit_of_drive_mounts_is_refused()
    {
        var mounts = Enumerable.Range(0, DriveMounts.MaxDriveMounts + 1).Select(i =>
        {
            FirecrackerDriveMount m = Mount();
            m.VMPath = $"/data{i}";
            return m;
        }).ToArray();

        AssertInvalid($"more than {DriveMounts.MaxDriveMounts}", mounts);
        Assert.Equal(DriveMounts.MaxDriveMounts, DriveMounts.Validate("vm1", mounts[..DriveMounts.MaxDriveMounts], "qemu").Length);
    }

    [Fact]
    public void Every_problem_is_reported_with_its_mounts_index()
    {
        FirecrackerDriveMount bad = Mount();
        bad.VMPath = "relative";
        bad.CacheType = "bad";

        string message = AssertInvalid("DriveMounts[1].VMPath", Mount(), bad);

        Assert.Contains("DriveMounts[1].CacheType", message, StringComparison.Ordinal);
        Assert.Contains("create vm \"vm1\"", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("qemu")]
    [InlineData("auto")]
    public void A_rate_limiter_is_unimplemented_unless_the_VMM_is_Firecracker(string vmm)
    {
        FirecrackerDriveMount request = Mount();
        request.RateLimiter = new FirecrackerRateLimiter { Ops = new FirecrackerTokenBucket { Capacity = 100, RefillTime = 1000 } };

        TtrpcException e = Assert.Throws<TtrpcException>(() => DriveMounts.Validate("vm1", [request], vmm));

        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
        Assert.Contains("RateLimiter", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_block_device_is_accepted_under_Firecracker_and_unimplemented_under_QEMU()
    {
        string device = Directory.EnumerateFileSystemEntries("/sys/class/block").Select(e => "/dev/" + Path.GetFileName(e)).FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("this test needs a block device in /dev (none is listed in /sys/class/block)");
        FirecrackerDriveMount request = Mount();
        request.HostPath = device;

        Assert.Equal(device, Assert.Single(DriveMounts.Validate("vm1", [request], "firecracker")).HostPath);
        TtrpcException e = Assert.Throws<TtrpcException>(() => DriveMounts.Validate("vm1", [request], "qemu"));
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
        Assert.Contains("block device", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rate_limiter_reaches_the_drive_under_Firecracker()
    {
        FirecrackerDriveMount request = Mount();
        request.RateLimiter = new FirecrackerRateLimiter { Ops = new FirecrackerTokenBucket { Capacity = 100, RefillTime = 1000 } };

        VmDriveMount mount = Assert.Single(DriveMounts.Validate("vm1", [request], "firecracker"));

        Assert.Equal(new RateLimiter(null, new TokenBucket(100, 1000)), mount.RateLimiter);
    }

    [Fact]
    public void A_negative_rate_limiter_is_invalid_even_under_Firecracker()
    {
        FirecrackerDriveMount request = Mount();
        request.RateLimiter = new FirecrackerRateLimiter { Bandwidth = new FirecrackerTokenBucket { Capacity = -1 } };

        AssertInvalid("DriveMounts[0].RateLimiter.Bandwidth", "firecracker", request);
    }

    private const string MachineSpecValidatorIdPattern = "^[A-Za-z0-9_]+$";

    private FirecrackerDriveMount Mount() => new()
    {
        HostPath = _image,
        VMPath = "/data",
        FilesystemType = "ext4",
        Options = { "noatime" },
    };

    private static string AssertInvalid(string expected, params FirecrackerDriveMount[] mounts) => AssertInvalid(expected, "qemu", mounts);

    private static string AssertInvalid(string expected, string vmm, params FirecrackerDriveMount[] mounts)
    {
        TtrpcException e = Assert.Throws<TtrpcException>(() => DriveMounts.Validate("vm1", mounts, vmm));
        Assert.True(e.StatusCode == StatusCode.InvalidArgument, $"{e.StatusCode}: {e.Message}");
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        return e.Message;
    }
}
