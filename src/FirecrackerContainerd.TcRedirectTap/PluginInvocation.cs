using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Tap;

namespace FirecrackerContainerd.TcRedirectTap;

/// <summary>
/// One run of the plugin as CNI describes it: the command and attachment from the environment, the configuration
/// from stdin, each checked as the reference plugins' skeleton checks them, with its error codes.
/// </summary>
/// <param name="Command">ADD, DEL or CHECK.</param>
/// <param name="ContainerId">CNI_CONTAINERID: here the VM's id.</param>
/// <param name="NetnsPath">CNI_NETNS (may be empty for DEL).</param>
/// <param name="IfName">CNI_IFNAME: the interface the tap is redirected with.</param>
/// <param name="Tap">The tap's name, owner and group from CNI_ARGS.</param>
/// <param name="CniVersion">The configuration's cniVersion, which the result is written in.</param>
/// <param name="PreviousResult">The configuration's prevResult, or null.</param>
internal sealed record PluginInvocation(
    string Command, string ContainerId, string NetnsPath, string IfName, TapArguments Tap, string CniVersion, CniResult? PreviousResult)
{
    private static readonly Dictionary<string, string[]> Required = new(StringComparer.Ordinal)
    {
        ["ADD"] = ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
        ["CHECK"] = ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
        ["DEL"] = ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
    };

    /// <summary>Reads and checks the invocation.</summary>
    /// <exception cref="PluginFailure">Something is missing or invalid; the error names it, with the specification's code.</exception>
    public static PluginInvocation Parse(Func<string, string?> environment, string stdin)
    {
        string command = environment("CNI_COMMAND") ?? string.Empty;
        if (!Required.TryGetValue(command, out string[]? required))
        {
            throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, command.Length == 0 ? "required env variables [CNI_COMMAND] missing" : $"unknown CNI_COMMAND: {command}");
        }

        string[] missing = required.Where(name => string.IsNullOrEmpty(environment(name))).ToArray();
        if (missing.Length > 0)
        {
            throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, $"required env variables [{string.Join(',', missing)}] missing");
        }

        string containerId = environment("CNI_CONTAINERID")!;
        if (!CniAttachment.IsCniName(containerId))
        {
            throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, "invalid characters in CNI_CONTAINERID", containerId);
        }

        string ifName = environment("CNI_IFNAME")!;
        try
        {
            TapDevice.ValidateName(ifName);
        }
        catch (ArgumentException e)
        {
            throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, $"invalid CNI_IFNAME: {e.Message}");
        }

        JsonObject config = ParseConfig(stdin);
        string version = ConfigVersion(config);
        if (command == "CHECK" && !Network.Cni.CniVersion.AllowsCheck(version))
        {
            throw new PluginFailure(CniErrorCodes.IncompatibleVersion, "config version does not allow CHECK", $"config is \"{version}\"; CHECK needs 0.4.0 or later");
        }

        CniResult? previous = null;
        if (config["prevResult"] is JsonNode prevResult)
        {
            try
            {
                previous = CniResultJson.Parse(prevResult);
            }
            catch (CniFormatException e)
            {
                throw new PluginFailure(CniErrorCodes.DecodingFailure, "failed to parse previous CNI result", e.Message);
            }
        }

        TapArguments tap = TapArguments.Parse(environment("CNI_ARGS") ?? string.Empty);
        return new PluginInvocation(command, containerId, environment("CNI_NETNS") ?? string.Empty, ifName, tap, version, previous);
    }

    /// <summary>The configuration's cniVersion when it can be read, for the error result; else the latest version.</summary>
    public static string VersionForErrors(string stdin)
    {
        try
        {
            return JsonNode.Parse(stdin) is JsonObject config && config["cniVersion"] is JsonValue v && v.GetValueKind() == JsonValueKind.String
                && Network.Cni.CniVersion.IsSupported(v.GetValue<string>())
                ? v.GetValue<string>()
                : Network.Cni.CniVersion.Latest;
        }
        catch (JsonException)
        {
            return Network.Cni.CniVersion.Latest;
        }
    }

    private static JsonObject ParseConfig(string stdin)
    {
        JsonObject config;
        try
        {
            config = JsonNode.Parse(stdin) as JsonObject ?? throw new PluginFailure(CniErrorCodes.DecodingFailure, "error unmarshalling network config: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new PluginFailure(CniErrorCodes.DecodingFailure, $"error unmarshalling network config: {e.Message}");
        }

        string? name = config["name"] is JsonValue n && n.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : null;
        if (string.IsNullOrEmpty(name))
        {
            throw new PluginFailure(CniErrorCodes.InvalidNetworkConfig, "missing network name");
        }

        if (!CniAttachment.IsCniName(name))
        {
            throw new PluginFailure(CniErrorCodes.InvalidNetworkConfig, "invalid characters found in network name", name);
        }

        return config;
    }

    private static string ConfigVersion(JsonObject config)
    {
        string? version = config["cniVersion"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
        if (version is null)
        {
            throw new PluginFailure(CniErrorCodes.DecodingFailure, "network config has no cniVersion");
        }

        return Network.Cni.CniVersion.IsSupported(version)
            ? version
            : throw new PluginFailure(CniErrorCodes.IncompatibleVersion, "incompatible CNI versions", $"config is \"{version}\", plugin supports [{string.Join(' ', Network.Cni.CniVersion.Supported)}]");
    }
}
