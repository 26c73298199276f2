using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>
/// A network configuration (spec section 1): its name, version, and the chain of plugin configurations, each kept
/// as the JSON object it was (unknown fields are the plugin's business and pass through unchanged).
/// </summary>
/// <param name="Name">The network's name.</param>
/// <param name="CniVersion">The spec version of the configuration and every request made from it.</param>
/// <param name="DisableCheck">Whether CHECK must not be run.</param>
/// <param name="Plugins">The plugin configurations in chain order, each with a <c>type</c>.</param>
/// <param name="Source">The file it came from, for errors.</param>
public sealed record CniNetworkConfig(string Name, string CniVersion, bool DisableCheck, ImmutableArray<JsonObject> Plugins, string Source)
{
    /// <summary>
    /// Finds the network named <paramref name="name"/> in <paramref name="directory"/> as libcni does: the
    /// <c>.conflist</c> files in name order first, then single-plugin <c>.conf</c> and <c>.json</c> files, which
    /// become a one-plugin chain.
    /// </summary>
    /// <exception cref="CniConfigException">The directory has no such network, or a file in it is not a valid configuration.</exception>
    public static CniNetworkConfig Load(string directory, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!Directory.Exists(directory))
        {
            throw new CniConfigException($"no CNI network configurations in {directory}: the directory does not exist");
        }

        foreach (string file in Files(directory, ".conflist"))
        {
            CniNetworkConfig list = ParseList(File.ReadAllText(file), file);
            if (list.Name == name)
            {
                return list;
            }
        }

        foreach (string file in Files(directory, ".conf", ".json"))
        {
            JsonObject plugin = ParseObject(File.ReadAllText(file), file);
            if (Json.OptionalString(plugin, "name", file) == name)
            {
                string version = Version(plugin, file);
                return new CniNetworkConfig(name, version, ReadBool(plugin, "disableCheck", file), [CheckPlugin(plugin, $"{file}")], file);
            }
        }

        throw new CniConfigException($"no CNI network named \"{name}\" in {directory}");
    }

    /// <summary>Parses and checks a <c>.conflist</c> document.</summary>
    /// <exception cref="CniConfigException">It is not valid JSON or breaks a rule; the message names the file and the field.</exception>
    public static CniNetworkConfig ParseList(string json, string source)
    {
        JsonObject list = ParseObject(json, source);
        string name = Json.OptionalString(list, "name", source) ?? throw new CniConfigException($"{source}: name is missing");
        if (!CniAttachment.IsCniName(name))
        {
            throw new CniConfigException($"{source}: network name \"{name}\" must start with a letter or digit followed by letters, digits, '_', '.' or '-'");
        }

        string version = Version(list, source);
        if (list["plugins"] is not JsonArray plugins || plugins.Count == 0)
        {
            throw new CniConfigException($"{source}: plugins must be a non-empty list");
        }

        ImmutableArray<JsonObject> checkedPlugins = plugins
            .Select((p, i) => CheckPlugin(p as JsonObject ?? throw new CniConfigException($"{source}: plugins[{i}] is not an object"), $"{source}: plugins[{i}]"))
            .ToImmutableArray();
        return new CniNetworkConfig(name, version, ReadBool(list, "disableCheck", source), checkedPlugins, source);
    }

    /// <summary>The <c>type</c> of a plugin configuration this record holds.</summary>
    public static string TypeOf(JsonObject plugin)
    {
        ArgumentNullException.ThrowIfNull(plugin);
        return plugin["type"]!.GetValue<string>();
    }

    private static JsonObject CheckPlugin(JsonObject plugin, string where)
    {
        string? type;
        try
        {
            type = Json.OptionalString(plugin, "type", where);
        }
        catch (CniFormatException e)
        {
            throw new CniConfigException(e.Message);
        }

        if (string.IsNullOrEmpty(type) || type is "." or ".." || type.Contains('/', StringComparison.Ordinal) || type.Contains('\0', StringComparison.Ordinal))
        {
            throw new CniConfigException($"{where}: type \"{type}\" must name a plugin executable (a file name, no '/')");
        }

        return plugin;
    }

    private static string Version(JsonObject config, string source)
    {
        string? version;
        try
        {
            version = Json.OptionalString(config, "cniVersion", source);
        }
        catch (CniFormatException e)
        {
            throw new CniConfigException(e.Message);
        }

        return Cni.CniVersion.IsSupported(version)
            ? version!
            : throw new CniConfigException($"{source}: cniVersion \"{version}\" is not one of {string.Join(", ", Cni.CniVersion.Supported)}");
    }

    private static bool ReadBool(JsonObject config, string key, string source) => config[key] switch
    {
        null => false,
        JsonValue v when v.GetValueKind() is JsonValueKind.True => true,
        JsonValue v when v.GetValueKind() is JsonValueKind.False => false,
        JsonValue v when v.GetValueKind() is JsonValueKind.String && bool.TryParse(v.GetValue<string>(), out bool b) => b,
        JsonNode other => throw new CniConfigException($"{source}: {key} is not a boolean: {other.ToJsonString()}"),
    };

    private static JsonObject ParseObject(string json, string source)
    {
        try
        {
            return JsonNode.Parse(json) as JsonObject ?? throw new CniConfigException($"{source}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CniConfigException($"{source}: not valid JSON: {e.Message}", e);
        }
    }

    private static IEnumerable<string> Files(string directory, params string[] extensions) =>
        Directory.EnumerateFiles(directory)
            .Where(f => extensions.Contains(Path.GetExtension(f), StringComparer.Ordinal))
            .Order(StringComparer.Ordinal);
}

/// <summary>A CNI network configuration that is missing or invalid; the message names the file and the field.</summary>
public sealed class CniConfigException : Exception
{
    /// <summary>Creates the exception with a message naming the file and what is wrong.</summary>
    public CniConfigException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception for a file that does not parse.</summary>
    public CniConfigException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
