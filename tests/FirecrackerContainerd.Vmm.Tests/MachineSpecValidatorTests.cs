using System.Collections.Immutable;
using System.Text.Json;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Tests;

public class MachineSpecValidatorTests
{
    private static MachineSpec Valid() => new(
        "vm1",
        new BootSource("/k/vmlinux"),
        new MachineConfig(2, 256),
        [new Drive("root", "/d/root.ext4", IsRoot: true), new Drive("stub0", "/d/stub0")],
        new VsockDevice(3, "firecracker.vsock"),
        [new NetworkInterface("eth0", "tap0", "02:fc:00:00:00:01", AllowMmds: true)],
        new BalloonDevice(16, true),
        new MmdsConfig());

    [Fact]
    public void A_complete_spec_is_valid()
    {
        Assert.Empty(MachineSpecValidator.Problems(Valid()));
    }

    public static TheoryData<string, Func<MachineSpec, MachineSpec>, string> Broken => new()
    {
        { "missing kernel", s => s with { Boot = new BootSource("") }, "kernel image path is missing" },
        { "CID 2", s => s with { Vsock = new VsockDevice(2, "v") }, "guest CID 2 is reserved" },
        { "CID 0", s => s with { Vsock = new VsockDevice(0, "v") }, "guest CID 0 is reserved" },
        { "empty vsock path", s => s with { Vsock = new VsockDevice(3, "") }, "Unix socket path is missing" },
        { "duplicate drive", s => s with { Drives = [.. s.Drives, new Drive("stub0", "/d/x")] }, "drive id \"stub0\" is used more than once" },
        { "two roots", s => s with { Drives = [.. s.Drives, new Drive("root2", "/d/y", IsRoot: true)] }, "\"root\" and \"root2\" are both marked root" },
        { "bad drive id", s => s with { Drives = [new Drive("../etc", "/d/x")] }, "drive id \"../etc\" must be" },
        { "drive id with a trailing newline", s => s with { Drives = [new Drive("stub0\n", "/d/x")] }, "must be" },
        { "mac with a trailing newline", s => s with { NetworkInterfaces = [new NetworkInterface("eth0", "tap0", "02:fc:00:00:00:01\n", AllowMmds: true)] }, "guest MAC" },
        { "partuuid off root", s => s with { Drives = [new Drive("d", "/d/x", PartUuid: "abc")] }, "partuuid is only meaningful" },
        { "no vcpus", s => s with { Machine = new MachineConfig(0, 128) }, "vcpu count 0 is outside" },
        { "odd vcpus with smt", s => s with { Machine = new MachineConfig(3, 128, Smt: true) }, "with SMT the vcpu count must be 1 or even" },
        { "no memory", s => s with { Machine = new MachineConfig(1, 0) }, "memory size 0 MiB" },
        { "long tap name", s => s with { NetworkInterfaces = [new NetworkInterface("eth0", "a-very-long-tap-name", AllowMmds: true)] }, "must be 1..15 bytes" },
        { "bad mac", s => s with { NetworkInterfaces = [new NetworkInterface("eth0", "tap0", "02:fc", AllowMmds: true)] }, "guest MAC \"02:fc\"" },
        { "duplicate nic", s => s with { NetworkInterfaces = [.. s.NetworkInterfaces, new NetworkInterface("eth0", "tap1")] }, "network interface id \"eth0\" is used more than once" },
        { "mmds unreachable", s => s with { NetworkInterfaces = [new NetworkInterface("eth0", "tap0")] }, "no network interface allows MMDS" },
        { "mmds address", s => s with { Mmds = new MmdsConfig(Ipv4Address: "10.0.0.1") }, "not an IPv4 link-local address" },
        { "mmds data", s => s with { Mmds = new MmdsConfig(InitialMetadata: JsonDocument.Parse("[1]").RootElement) }, "must be a JSON object" },
        { "balloon too big", s => s with { Balloon = new BalloonDevice(1024, false) }, "balloon: amount 1024 MiB" },
        { "negative bucket", s => s with { Drives = [new Drive("d", "/x", RateLimiter: new RateLimiter(new TokenBucket(-1, 1)))] }, "bandwidth rate limiter values must not be negative" },
    };

    [Theory]
    [MemberData(nameof(Broken))]
    public void Broken_specs_are_refused_with_a_clear_reason(string what, Func<MachineSpec, MachineSpec> breakIt, string expected)
    {
        var spec = breakIt(Valid());

        var e = Assert.Throws<InvalidMachineSpecException>(() => MachineSpecValidator.ThrowIfInvalid(spec));

        Assert.True(e.Message.Contains(expected, StringComparison.Ordinal), $"{what}: \"{e.Message}\" lacks \"{expected}\"");
        Assert.StartsWith("invalid machine spec for vm \"vm1\": ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_problem_is_listed_not_only_the_first()
    {
        var spec = Valid() with { Boot = new BootSource(""), Vsock = new VsockDevice(1, "v"), Machine = new MachineConfig(0, 0) };

        var e = Assert.Throws<InvalidMachineSpecException>(() => MachineSpecValidator.ThrowIfInvalid(spec));

        Assert.Equal(5, e.Problems.Count); // kernel, vcpus, memory, CID, and the balloon now larger than the memory
    }

    [Fact]
    public void Host_files_are_checked_only_when_asked()
    {
        using var dir = new TempDir();
        var spec = TestSpecs.Minimal(dir) with { Drives = [new Drive("d", dir.Combine("missing.img"))] };

        Assert.Empty(MachineSpecValidator.Problems(spec));
        Assert.Contains(MachineSpecValidator.Problems(spec, checkHostFiles: true), p => p.Contains("missing.img", StringComparison.Ordinal));
    }

    [Fact]
    public void Patching_a_drive_returns_a_new_spec_and_unknown_drives_are_refused()
    {
        var spec = Valid();

        var patched = spec.WithDriveHostPath("stub0", "/images/c1.ext4");

        Assert.Equal("/images/c1.ext4", patched.Drives[1].HostPath);
        Assert.Equal("/d/stub0", spec.Drives[1].HostPath);
        Assert.Throws<ArgumentException>(() => spec.WithDriveHostPath("nope", "/x"));
    }

    [Fact]
    public void Default_collections_read_as_empty()
    {
        var spec = new MachineSpec("vm1", new BootSource("/k"), new MachineConfig(1, 128), default);

        Assert.Empty(spec.Drives);
        Assert.Empty(spec.NetworkInterfaces);
        Assert.Null(spec.RootDrive);
        Assert.Empty(MachineSpecValidator.Problems(spec));
        _ = ImmutableArray<Drive>.Empty;
    }
}
