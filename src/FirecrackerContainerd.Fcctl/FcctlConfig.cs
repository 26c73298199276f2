using System.Text.Json;
using System.Text.Json.Serialization;

namespace FirecrackerContainerd.Fcctl;

/// <summary>
/// fcctl's defaults, from <c>/etc/firecracker-containerd/fcctl.json</c> or <c>--config</c>: the daemon's socket, the
/// namespace, and what <c>create-vm</c> asks for when its flags do not say (kernel, kernel arguments, sizes).
/// </summary>
public sealed record FcctlConfig
{
    /// <summary>Read when present and no <c>--config</c> is given.</summary>
    public const string DefaultPath = "/etc/firecracker-containerd/fcctl.json";

    /// <summary>The daemon's socket.</summary>
    [JsonPropertyName("socket")]
    public string Socket { get; set; } = "/run/firecracker-containerd/control.sock";

    /// <summary>The containerd namespace calls work in.</summary>
    [JsonPropertyName("namespace")]
    public string Namespace { get; set; } = "default";

    /// <summary>create-vm's kernel (CreateVM's KernelImagePath); empty: the runtime configuration's.</summary>
    [JsonPropertyName("kernel")]
    public string Kernel { get; set; } = "";

    /// <summary>create-vm's kernel command line (CreateVM's KernelArgs); empty: the runtime configuration's.</summary>
    [JsonPropertyName("kernelArgs")]
    public string KernelArgs { get; set; } = "";

    /// <summary>create-vm's vCPU count; 0: the shim's default.</summary>
    [JsonPropertyName("vcpus")]
    public uint Vcpus { get; set; }

    /// <summary>create-vm's memory in MiB; 0: the shim's default.</summary>
    [JsonPropertyName("memMib")]
    public uint MemMib { get; set; }

    /// <summary>Reads <paramref name="path"/>, or the default file when null (missing default file: built-in defaults).</summary>
    /// <exception cref="InvalidDataException">The file is missing (when named) or not a valid configuration.</exception>
    public static FcctlConfig Load(string? path)
    {
        string file = path ?? DefaultPath;
        if (path is null && !File.Exists(file))
        {
            return new FcctlConfig();
        }

        try
        {
            using var stream = File.OpenRead(file);
            var config = JsonSerializer.Deserialize(stream, FcctlConfigJson.Default.FcctlConfig)
                ?? throw new InvalidDataException($"config {file} is null");
            return config.Socket.Length == 0 || config.Namespace.Length == 0
                ? throw new InvalidDataException($"config {file}: socket and namespace must not be empty")
                : config.Kernel.Length > 0 && !Path.IsPathRooted(config.Kernel)
                ? throw new InvalidDataException($"config {file}: kernel must be an absolute path, got \"{config.Kernel}\"")
                : config;
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"config {file}: {e.Message}", e);
        }
    }
}

/// <summary>Source-generated JSON metadata for <see cref="FcctlConfig"/>.</summary>
[JsonSourceGenerationOptions(UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, ReadCommentHandling = JsonCommentHandling.Skip)]
[JsonSerializable(typeof(FcctlConfig))]
internal sealed partial class FcctlConfigJson : JsonSerializerContext;
