using System.Text.Json.Serialization;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;
using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Runtime.Config;

/// <summary>The runtime configuration's <c>jail</c> section: whether and how each VM's VMM is confined (docs/jail.md).</summary>
public sealed record JailConfig
{
    /// <summary>On unless the configuration turns it off: every VM's VMM and vsock device run jailed.</summary>
    [JsonPropertyName("enabled")]
    public bool Enabled { get; set; } = true;

    /// <summary>The uids (and gids) VMs take one each of.</summary>
    [JsonPropertyName("uid_range")]
    public UidRangeConfig UidRange { get; set; } = new();

    /// <summary>Where jail directories and uid locks live.</summary>
    [JsonPropertyName("chroot_base")]
    public string ChrootBase { get; set; } = JailSettings.DefaultChrootBase;

    /// <summary>The parent of each VM's cgroup.</summary>
    [JsonPropertyName("cgroup_parent")]
    public string CgroupParent { get; set; } = JailSettings.DefaultCgroupParent;

    /// <summary>Memory the VMM may use beyond guest RAM, in MiB.</summary>
    [JsonPropertyName("memory_overhead_mib")]
    public int MemoryOverheadMib { get; set; } = JailSettings.DefaultMemoryOverheadMib;

    /// <summary>CPU limit in percent of one core; 0 for none.</summary>
    [JsonPropertyName("cpu_quota_percent")]
    public int CpuQuotaPercent { get; set; }

    /// <summary>Task limit of the VM's cgroup; 0 for none.</summary>
    [JsonPropertyName("pids_max")]
    public int PidsMax { get; set; } = 512;

    /// <summary>fc-jail; empty for the one scripts/lib/publish puts beside the shim (<c>../jail/fc-jail</c>).</summary>
    [JsonPropertyName("launcher_path")]
    public string LauncherPath { get; set; } = string.Empty;

    /// <summary>fc-vhost-vsock; empty for the one scripts/lib/publish puts beside the shim (<c>../vsock/fc-vhost-vsock</c>).</summary>
    [JsonPropertyName("vsock_device_path")]
    public string VsockDevicePath { get; set; } = string.Empty;

    /// <summary>Firecracker's jailer, used when Firecracker is the VMM; empty for <c>jailer</c> on PATH.</summary>
    [JsonPropertyName("jailer_path")]
    public string JailerPath { get; set; } = string.Empty;

    /// <summary>How a jailed Firecracker's kernel, initrd and drives reach its chroot: <c>copy</c> (upstream's default) or <c>bind</c>.</summary>
    [JsonPropertyName("drive_expose_policy")]
    [JsonConverter(typeof(JsonStringEnumConverter<DriveExposePolicy>))]
    public DriveExposePolicy DriveExposePolicy { get; set; } = DriveExposePolicy.Copy;

    /// <summary>The VMM layer's settings; programs not configured are looked for beside <paramref name="shimPath"/>.</summary>
    public JailSettings ToSettings(string? shimPath)
    {
        string published = Path.GetDirectoryName(Path.GetDirectoryName(shimPath ?? string.Empty) ?? string.Empty) ?? "/";
        return new JailSettings(
            UidRange.Start, UidRange.Count, ChrootBase, CgroupParent, MemoryOverheadMib, CpuQuotaPercent, PidsMax,
            LauncherPath.Length > 0 ? LauncherPath : Path.Combine(published, "jail", "fc-jail"),
            VsockDevicePath.Length > 0 ? VsockDevicePath : Path.Combine(published, "vsock", "fc-vhost-vsock"))
        {
            JailerBinary = JailerPath.Length > 0 ? JailerPath : "jailer",
            DriveExposePolicy = DriveExposePolicy,
        };
    }
}

/// <summary>A range of uids: <c>start</c> and <c>count</c>.</summary>
public sealed record UidRangeConfig
{
    /// <summary>The first uid.</summary>
    [JsonPropertyName("start")]
    public uint Start { get; set; } = 900_000;

    /// <summary>How many.</summary>
    [JsonPropertyName("count")]
    public uint Count { get; set; } = 4096;
}
