using System.Text.Json;
using System.Text.Json.Serialization;

namespace FirecrackerContainerd.Control.Configuration;

/// <summary>The daemon's settings: from defaults, then a JSON file, then command-line flags (later wins).</summary>
public sealed record ControlOptions
{
    /// <summary>Where the daemon reads its JSON configuration unless <c>--config</c> names another file.</summary>
    public const string DefaultConfigPath = "/etc/firecracker-containerd/control.json";

    /// <summary>The Unix socket the daemon serves on (mode 0600).</summary>
    [JsonPropertyName("socket")]
    public string SocketPath { get; set; } = "/run/firecracker-containerd/control.sock";

    /// <summary>The Unix socket the same API is served on as gRPC (HTTP/2, mode 0600); empty: no gRPC.</summary>
    [JsonPropertyName("grpcSocket")]
    public string GrpcSocketPath { get; set; } = "/run/firecracker-containerd/control-grpc.sock";

    /// <summary>containerd's gRPC socket address; with the namespace and VM id it names each shim's socket.</summary>
    [JsonPropertyName("containerdAddress")]
    public string ContainerdAddress { get; set; } = "/run/containerd/containerd.sock";

    /// <summary>The shim executable launched with its <c>start</c> verb.</summary>
    [JsonPropertyName("shimBinary")]
    public string ShimBinary { get; set; } = "/usr/local/bin/containerd-shim-aws-firecracker";

    /// <summary>containerd's binary, which shims run to publish events (<c>-publish-binary</c>).</summary>
    [JsonPropertyName("publishBinary")]
    public string PublishBinary { get; set; } = "/usr/bin/containerd";

    /// <summary>
    /// The runtime configuration the shims it launches read (kernel, guest image, VMM, shim base directory; docs/configuration.md),
    /// passed to them as <c>FIRECRACKER_CONTAINERD_RUNTIME_CONFIG</c>. Empty: the shims look where they do when containerd
    /// starts them (that variable in the daemon's own environment, else <c>/etc/containerd/firecracker-runtime.json</c>).
    /// </summary>
    [JsonPropertyName("runtimeConfig")]
    public string RuntimeConfig { get; set; } = "";

    /// <summary>Where the daemon keeps one bundle directory per VM it created (<c>&lt;state&gt;/&lt;ns&gt;/&lt;vm&gt;</c>).</summary>
    [JsonPropertyName("stateDir")]
    public string StateDir { get; set; } = "/var/lib/firecracker-containerd/control";

    /// <summary>Reads a JSON configuration file; unknown keys are errors, so a typo does not pass unnoticed.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid configuration.</exception>
    public static ControlOptions Load(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            var loaded = JsonSerializer.Deserialize(file, ControlOptionsJson.Default.ControlOptions)
                ?? throw new InvalidDataException($"config {path} is null");
            return loaded.Checked(path);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"config {path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Builds the options from <paramref name="args"/>: <c>--config FILE</c> (default <see cref="DefaultConfigPath"/>,
    /// read only when present), then <c>--socket</c>, <c>--containerd-address</c>, <c>--shim-binary</c>,
    /// <c>--publish-binary</c>, <c>--state-dir</c>, <c>--runtime-config</c>, <c>--grpc-socket</c> (an empty value turns gRPC off).
    /// </summary>
    /// <exception cref="ArgumentException">An unknown flag or a flag without its value.</exception>
    public static ControlOptions FromArguments(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            if (name is not ("--config" or "--socket" or "--grpc-socket" or "--containerd-address" or "--shim-binary" or "--publish-binary" or "--state-dir"
                or "--runtime-config"))
            {
                throw new ArgumentException($"unknown argument {name}");
            }

            if (i + 1 >= args.Count || (args[i + 1].Length == 0 && name != "--grpc-socket"))
            {
                throw new ArgumentException($"{name} needs a value");
            }

            flags[name] = args[++i];
        }

        ControlOptions options = flags.TryGetValue("--config", out string? configPath)
            ? Load(configPath)
            : File.Exists(DefaultConfigPath) ? Load(DefaultConfigPath) : new ControlOptions();
        return (options with
        {
            SocketPath = flags.GetValueOrDefault("--socket", options.SocketPath),
            GrpcSocketPath = flags.GetValueOrDefault("--grpc-socket", options.GrpcSocketPath),
            ContainerdAddress = flags.GetValueOrDefault("--containerd-address", options.ContainerdAddress),
            ShimBinary = flags.GetValueOrDefault("--shim-binary", options.ShimBinary),
            PublishBinary = flags.GetValueOrDefault("--publish-binary", options.PublishBinary),
            StateDir = flags.GetValueOrDefault("--state-dir", options.StateDir),
            RuntimeConfig = flags.GetValueOrDefault("--runtime-config", options.RuntimeConfig),
        }).Checked("command line");
    }

    private ControlOptions Checked(string source)
    {
        foreach (var (name, value) in new[]
        {
            ("socket", SocketPath), ("shimBinary", ShimBinary), ("publishBinary", PublishBinary), ("stateDir", StateDir),
        })
        {
            if (string.IsNullOrEmpty(value) || !Path.IsPathRooted(value))
            {
                throw new InvalidDataException($"{source}: {name} must be an absolute path, got \"{value}\"");
            }
        }

        if (RuntimeConfig.Length > 0 && !(Path.IsPathRooted(RuntimeConfig) && File.Exists(RuntimeConfig)))
        {
            throw new InvalidDataException($"{source}: runtimeConfig must be the absolute path of an existing file or empty, got \"{RuntimeConfig}\"");
        }

        if (GrpcSocketPath.Length > 0 && !Path.IsPathRooted(GrpcSocketPath))
        {
            throw new InvalidDataException($"{source}: grpcSocket must be an absolute path or empty, got \"{GrpcSocketPath}\"");
        }

        return string.IsNullOrEmpty(ContainerdAddress)
            ? throw new InvalidDataException($"{source}: containerdAddress must not be empty")
            : this;
    }
}

/// <summary>Source-generated JSON metadata for <see cref="ControlOptions"/>.</summary>
[JsonSourceGenerationOptions(UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, ReadCommentHandling = JsonCommentHandling.Skip)]
[JsonSerializable(typeof(ControlOptions))]
internal sealed partial class ControlOptionsJson : JsonSerializerContext;
