using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;
using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Runtime.Tests.Config;

public sealed class JailConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-jailcfg-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_jail_is_on_by_default_with_the_documented_defaults()
    {
        RuntimeConfig config = RuntimeConfig.Load(Write("""{"kernel_image_path": "/k", "initrd_path": "/i"}"""));

        Assert.True(config.Jail.Enabled);
        Assert.Equal("/run/firecracker-containerd/jail", config.Jail.ChrootBase);
        Assert.Equal("firecracker-containerd", config.Jail.CgroupParent);
        Assert.Equal(256, config.Jail.MemoryOverheadMib);
    }

    [Fact]
    public void An_enabled_jail_with_an_empty_uid_range_is_refused_when_the_configuration_is_read()
    {
        string path = Write("""{"kernel_image_path": "/k", "initrd_path": "/i", "jail": {"enabled": true, "uid_range": {"start": 5000, "count": 0}}}""");

        var e = Assert.Throws<InvalidOperationException>(() => RuntimeConfig.Load(path));

        Assert.Contains("jail.uid_range.count is 0", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_disabled_jail_is_not_validated()
    {
        RuntimeConfig config = RuntimeConfig.Load(Write("""{"kernel_image_path": "/k", "initrd_path": "/i", "jail": {"enabled": false, "uid_range": {"count": 0}}}"""));

        Assert.Equal(0u, config.Jail.UidRange.Count);
    }

    [Fact]
    public void Programs_not_configured_are_looked_for_where_publish_puts_them_beside_the_shim()
    {
        JailSettings settings = new JailConfig().ToSettings("/opt/fc/shim/containerd-shim-aws-firecracker");

        Assert.Equal("/opt/fc/jail/fc-jail", settings.LauncherBinary);
        Assert.Equal("/opt/fc/vsock/fc-vhost-vsock", settings.VsockDeviceBinary);
    }

    [Fact]
    public void Firecrackers_jailer_and_drive_expose_policy_default_to_jailer_on_path_and_copy()
    {
        JailSettings settings = RuntimeConfig.Load(Write("""{"kernel_image_path": "/k", "initrd_path": "/i"}""")).Jail.ToSettings("/opt/fc/shim/shim");

        Assert.Equal("jailer", settings.JailerBinary);
        Assert.Equal(DriveExposePolicy.Copy, settings.DriveExposePolicy);
    }

    [Fact]
    public void Firecrackers_jailer_and_drive_expose_policy_are_read_from_the_jail_section()
    {
        string path = Write("""{"kernel_image_path": "/k", "initrd_path": "/i", "jail": {"jailer_path": "/opt/fc/jailer", "drive_expose_policy": "bind"}}""");

        JailSettings settings = RuntimeConfig.Load(path).Jail.ToSettings("/opt/fc/shim/shim");

        Assert.Equal("/opt/fc/jailer", settings.JailerBinary);
        Assert.Equal(DriveExposePolicy.Bind, settings.DriveExposePolicy);
    }

    [Fact]
    public void An_unknown_drive_expose_policy_is_refused_naming_the_key()
    {
        string path = Write("""{"kernel_image_path": "/k", "initrd_path": "/i", "jail": {"drive_expose_policy": "link"}}""");

        var e = Assert.Throws<InvalidOperationException>(() => RuntimeConfig.Load(path));

        Assert.Contains("drive_expose_policy", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    private string Write(string json)
    {
        string path = Path.Combine(_dir, "runtime.json");
        File.WriteAllText(path, json);
        return path;
    }
}
