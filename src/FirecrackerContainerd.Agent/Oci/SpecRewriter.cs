using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Agent.Oci;

/// <summary>A spec the host sent is not what it must be (not JSON, not an object, no process).</summary>
internal sealed class InvalidSpecException(string message) : Exception(message);

/// <summary>
/// Turns the OCI specs the host sends into what the guest's runtime runs. A spec must ask only for what the guest
/// can honour (<see cref="SpecCompatibility"/>). The container's root is always the bundle's rootfs directory (the
/// drive mounted there), whatever the host said; a process's terminal flag is the request's, which the runtime
/// checks against the console socket it is given; the VM's metadata directory is mounted read-only at its own path
/// (unless the spec mounts something there).
/// </summary>
internal sealed class SpecRewriter
{
    private readonly GuestRuntimes _runtime;
    private readonly string? _metadataDirectory;
    private readonly Func<string, bool> _existsInGuest;

    /// <param name="runtime">The runtime that will run the specs.</param>
    /// <param name="metadataDirectory">The VM's metadata directory every container gets, or null for none.</param>
    /// <param name="existsInGuest">Whether a path exists in the guest (bind sources, namespace paths); the file system by default.</param>
    public SpecRewriter(GuestRuntimes runtime, string? metadataDirectory, Func<string, bool>? existsInGuest = null)
    {
        _runtime = runtime;
        _metadataDirectory = metadataDirectory;
        _existsInGuest = existsInGuest ?? (path => File.Exists(path) || Directory.Exists(path));
    }

    /// <summary>A container's config.json, to be written into <paramref name="bundle"/>.</summary>
    /// <param name="spec">The config.json the host sent.</param>
    /// <param name="terminal">Whether the init process gets a terminal.</param>
    /// <param name="bundle">The bundle it will run from (relative bind sources resolve against it).</param>
    /// <param name="what">The spec, for error messages, e.g. <c>create c1: the OCI spec</c>.</param>
    /// <exception cref="InvalidSpecException">The spec is no JSON object or has no process.</exception>
    /// <exception cref="UnsupportedSpecException">The spec asks for what the guest cannot honour.</exception>
    public byte[] RewriteConfig(ReadOnlySpan<byte> spec, bool terminal, BundleDir bundle, string what)
    {
        JsonObject config = ParseObject(spec, what);
        SpecCompatibility.CheckConfig(config, _runtime, bundle.RootPath, _existsInGuest, what);
        if (config["root"] is not JsonObject root)
        {
            config["root"] = root = new JsonObject();
        }

        root["path"] = WellKnownNames.BundleRootfsName;
        if (config["process"] is not JsonObject process)
        {
            throw new InvalidSpecException($"{what} has no process object");
        }

        process["terminal"] = terminal;
        if (_metadataDirectory is not null)
        {
            AddMetadataMount(config, _metadataDirectory);
        }

        return Encoding.UTF8.GetBytes(config.ToJsonString());
    }

    /// <summary>An exec's OCI process JSON, as the runtime's <c>exec --process</c> reads it.</summary>
    /// <param name="process">The process JSON the host sent.</param>
    /// <param name="terminal">Whether the process gets a terminal.</param>
    /// <param name="what">The spec, for error messages, e.g. <c>exec e1: the process spec</c>.</param>
    /// <exception cref="InvalidSpecException">The spec is no JSON object.</exception>
    /// <exception cref="UnsupportedSpecException">The spec asks for what the guest cannot honour.</exception>
    public string RewriteProcess(ReadOnlySpan<byte> process, bool terminal, string what)
    {
        JsonObject spec = ParseObject(process, what);
        SpecCompatibility.CheckProcess(spec, _runtime, what);
        spec["terminal"] = terminal;
        return spec.ToJsonString();
    }

    private static void AddMetadataMount(JsonObject config, string metadataDirectory)
    {
        if (config["mounts"] is not JsonArray mounts)
        {
            config["mounts"] = mounts = [];
        }

        bool taken = mounts.Any(m => m is JsonObject o && o["destination"]?.GetValueKind() == JsonValueKind.String
            && (string?)o["destination"] == metadataDirectory);
        if (!taken)
        {
            mounts.Add((JsonNode)new JsonObject
            {
                ["destination"] = metadataDirectory,
                ["type"] = "bind",
                ["source"] = metadataDirectory,
                ["options"] = new JsonArray("rbind", "ro", "nosuid", "nodev", "noexec"),
            });
        }
    }

    private static JsonObject ParseObject(ReadOnlySpan<byte> json, string what)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidSpecException($"{what} is not JSON: {e.Message}");
        }

        return node as JsonObject ?? throw new InvalidSpecException($"{what} is not a JSON object");
    }
}
