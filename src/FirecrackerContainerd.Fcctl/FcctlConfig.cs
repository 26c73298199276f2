using System.Text.Json;
using System.Text.Json.Serialization;

namespace FirecrackerContainerd.Fcctl;

/// <summary>fcctl's defaults, from <c>/etc/firecracker-containerd/fcctl.json</c> or <c>--config</c>: the daemon's socket and the namespace.</summary>
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
