using System.Text.Json;
using System.Text.Json.Serialization;

namespace FirecrackerContainerd.Runtime.Config;

/// <summary>
/// The runtime's configuration file (JSON, snake_case keys; documented in docs/configuration.md), read by
/// every shim invocation. Its path is <c>FIRECRACKER_CONTAINERD_RUNTIME_CONFIG</c>, else
/// <see cref="DefaultPath"/>.
/// </summary>
/// <remarks>
/// The properties have setters, not init accessors: the JSON source generator sets every init-only property,
/// so a key missing from the file would get zero instead of the default written here.
/// </remarks>
public sealed record RuntimeConfig
{
    /// <summary>Where the file is looked for when the environment names none.</summary>
    public const string DefaultPath = "/etc/containerd/firecracker-runtime.json";

    /// <summary>The environment variable that overrides <see cref="DefaultPath"/>.</summary>
    public const string PathVariable = "FIRECRACKER_CONTAINERD_RUNTIME_CONFIG";

    /// <summary>Where the VMM layer keeps what it learnt about this host (the KVM boot probe's verdicts), for every shim.</summary>
    public const string VmmCacheDirectory = "/var/cache/firecracker-containerd";

    /// <summary>Guest kernel: an ELF vmlinux with a PVH entry boots under both VMMs (QEMU also takes a bzImage).</summary>
    [JsonPropertyName("kernel_image_path")]
    public string KernelImagePath { get; set; } = string.Empty;

    /// <summary>The guest initramfs with the agent (tools/image-builder); unused when <see cref="RootDrivePath"/> is set.</summary>
    [JsonPropertyName("initrd_path")]
    public string InitrdPath { get; set; } = string.Empty;

    /// <summary>
    /// The guest's root file system as a read-only ext4 image (tools/image-builder's <c>rootfs.ext4</c>), attached as the VM's
    /// first drive and booted without an initramfs: the guest reads only what it runs instead of unpacking every file, and
    /// every VM shares the image's pages in the host's cache. Empty: boot <see cref="InitrdPath"/>.
    /// </summary>
    [JsonPropertyName("root_drive_path")]
    public string RootDrivePath { get; set; } = string.Empty;

    /// <summary>Extra kernel arguments.</summary>
    [JsonPropertyName("kernel_args")]
    public string KernelArgs { get; set; } = "reboot=k panic=-1 quiet";

    /// <summary>vCPUs of a VM the runtime creates.</summary>
    [JsonPropertyName("vcpu_count")]
    public int VcpuCount { get; set; } = 2;

    /// <summary>Guest memory of a VM the runtime creates, in MiB.</summary>
    [JsonPropertyName("mem_size_mib")]
    public int MemSizeMib { get; set; } = 512;

    /// <summary>How many containers one VM can hold at once (stub drives attached at boot).</summary>
    [JsonPropertyName("container_slots")]
    public int ContainerSlots { get; set; } = 4;

    /// <summary>
    /// Read-only drives attached at boot for the erofs snapshotter's layer files, one per layer of every container the VM
    /// holds at once; 0 copies erofs snapshots into an ext4 image like other snapshotters' (docs/snapshotters.md).
    /// </summary>
    [JsonPropertyName("layer_slots")]
    public int LayerSlots { get; set; }

    /// <summary>The size limit, in MiB, of the guest tmpfs holding an erofs container's writable upper layer; 0 is half the guest's memory.</summary>
    [JsonPropertyName("layer_upper_mib")]
    public int LayerUpperMib { get; set; }

    /// <summary>Where VM directories live.</summary>
    [JsonPropertyName("shim_base_dir")]
    public string ShimBaseDir { get; set; } = "/var/lib/firecracker-containerd/shim-base";

    /// <summary>"auto", "firecracker" or "qemu".</summary>
    [JsonPropertyName("vmm")]
    public string Vmm { get; set; } = "auto";

    /// <summary>The firecracker binary for the Firecracker driver.</summary>
    [JsonPropertyName("firecracker_binary_path")]
    public string FirecrackerBinaryPath { get; set; } = "firecracker";

    /// <summary>
    /// Memory a pod's VM gets beyond the pod's limit (the kubelet's <c>io.kubernetes.cri.sandbox-memory</c>), for the guest
    /// kernel, the agent and the pod's files; a pod without a limit gets <see cref="MemSizeMib"/>.
    /// </summary>
    [JsonPropertyName("pod_memory_overhead_mib")]
    public int PodMemoryOverheadMib { get; set; } = 128;

    /// <summary>
    /// QEMU's TCG translated-code cache per VM in MiB (<c>tb-size</c>), 0 for QEMU's own default; no effect under KVM or
    /// Firecracker. The cache is most of QEMU's memory outside guest RAM under TCG (docs/vmm.md has the measurements).
    /// </summary>
    [JsonPropertyName("tcg_translation_cache_mib")]
    public int TcgTranslationCacheMib { get; set; }

    /// <summary>
    /// Logs how long each phase of a VM's boot and of each container's create, start, first output, exit and delete
    /// took (<c>trace ...: ... ms</c> lines at information level in containerd's log; docs/operations.md).
    /// </summary>
    [JsonPropertyName("trace")]
    public bool Trace { get; set; }

    /// <summary>How long a new VM may take until its agent answers, in seconds.</summary>
    [JsonPropertyName("agent_timeout_seconds")]
    public int AgentTimeoutSeconds { get; set; } = 120;

    /// <summary>Whether and how each VM's VMM runs confined (docs/jail.md); off unless <c>jail.enabled</c>.</summary>
    [JsonPropertyName("jail")]
    public JailConfig Jail { get; set; } = new();

    /// <summary>Reads the configuration from <paramref name="path"/> (or the environment's, or the default).</summary>
    public static RuntimeConfig Load(string? path = null)
    {
        path ??= Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } fromEnv ? fromEnv : DefaultPath;
        RuntimeConfig? config;
        try
        {
            config = JsonSerializer.Deserialize(File.ReadAllBytes(path), RuntimeConfigJson.Default.RuntimeConfig);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cannot read the runtime configuration {path}: {e.Message}", e);
        }
        catch (JsonException e)
        {
            throw new InvalidOperationException($"the runtime configuration {path} is not valid: {e.Message}", e);
        }

        config ??= new RuntimeConfig();
        var problems = new List<string>();
        if (config.KernelImagePath.Length == 0)
        {
            problems.Add("kernel_image_path is missing");
        }

        if (config.InitrdPath.Length == 0 && config.RootDrivePath.Length == 0)
        {
            problems.Add("initrd_path and root_drive_path are both missing: the guest needs one of them");
        }

        if (config.VcpuCount is < 1 or > 32)
        {
            problems.Add($"vcpu_count {config.VcpuCount} is not between 1 and 32");
        }

        if (config.MemSizeMib < 128)
        {
            problems.Add($"mem_size_mib {config.MemSizeMib} is below 128");
        }

        if (config.PodMemoryOverheadMib is < 0 or > 65536)
        {
            problems.Add($"pod_memory_overhead_mib {config.PodMemoryOverheadMib} is not between 0 and 65536");
        }

        if (config.TcgTranslationCacheMib is < 0 or > 4096)
        {
            problems.Add($"tcg_translation_cache_mib {config.TcgTranslationCacheMib} is not between 0 and 4096");
        }

        if (config.ContainerSlots is < 1 or > 16)
        {
            problems.Add($"container_slots {config.ContainerSlots} is not between 1 and 16");
        }

        if (config.LayerSlots is < 0 or > 16)
        {
            problems.Add($"layer_slots {config.LayerSlots} is not between 0 and 16");
        }

        if (config.LayerUpperMib < 0)
        {
            problems.Add($"layer_upper_mib {config.LayerUpperMib} is negative");
        }

        if (config.Jail.Enabled)
        {
            problems.AddRange(config.Jail.ToSettings(Environment.ProcessPath).Problems());
        }

        return problems.Count == 0
            ? config
            : throw new InvalidOperationException($"the runtime configuration {path} is not valid: {string.Join("; ", problems)}");
    }
}

/// <summary>Source-generated JSON for <see cref="RuntimeConfig"/>.</summary>
[JsonSourceGenerationOptions(ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(RuntimeConfig))]
internal sealed partial class RuntimeConfigJson : JsonSerializerContext;
