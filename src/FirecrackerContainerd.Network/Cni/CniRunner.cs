using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>
/// Runs a network configuration's plugin chain as libcni does (spec section 3): ADD in order, each plugin getting the
/// previous one's result; DEL in reverse order; CHECK in order; VERSION of one plugin. Every request carries the
/// network's <c>name</c> and <c>cniVersion</c>. Plugins are external programs: each run is bounded in time and
/// output, and what they print is checked before it is used or passed on.
/// </summary>
public sealed class CniRunner
{
    private const string AddCommand = "ADD";
    private const string DelCommand = "DEL";
    private const string CheckCommand = "CHECK";
    private const string VersionCommand = "VERSION";

    private readonly CniRunnerOptions _options;

    /// <summary>Creates a runner that finds plugins in <paramref name="options"/>' directories.</summary>
    public CniRunner(CniRunnerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.PluginDirectories.Count == 0)
        {
            throw new ArgumentException("at least one CNI plugin directory is needed", nameof(options));
        }

        _options = options;
    }

    /// <summary>Adds the attachment to the network and returns the last plugin's result, in the network's version.</summary>
    /// <exception cref="CniPluginException">A plugin failed or printed something that is not a valid result; the chain stops there.</exception>
    public async Task<CniResult> AddAsync(CniNetworkConfig network, CniAttachment attachment, CancellationToken cancellationToken = default)
    {
        Validate(network, attachment);
        CniResult? previous = null;
        foreach (JsonObject plugin in network.Plugins)
        {
            string type = CniNetworkConfig.TypeOf(plugin);
            string stdout = await InvokeAsync(AddCommand, network, plugin, attachment, previous, cancellationToken).ConfigureAwait(false);
            try
            {
                CniResult result = CniResultJson.Parse(stdout);
                previous = result with { CniVersion = network.CniVersion };
            }
            catch (CniFormatException e)
            {
                throw new CniPluginException(type, AddCommand, network.Name, null, $"printed an invalid result: {e.Message}", string.Empty, e);
            }
        }

        return previous!;
    }

    /// <summary>
    /// Deletes the attachment: every plugin in reverse order, given the ADD's result when the version passes it
    /// (0.4.0 and later). Plugins tolerate what is already gone, so a DEL may be repeated.
    /// </summary>
    /// <exception cref="CniPluginException">A plugin failed; the plugins before it in the chain were not run.</exception>
    public async Task DeleteAsync(CniNetworkConfig network, CniAttachment attachment, CniResult? addResult, CancellationToken cancellationToken = default)
    {
        Validate(network, attachment);
        CniResult? previous = CniVersion.PassesResultOnDelete(network.CniVersion) ? addResult : null;
        foreach (JsonObject plugin in network.Plugins.Reverse())
        {
            await InvokeAsync(DelCommand, network, plugin, attachment, previous, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Checks the attachment with every plugin in order, each given the ADD's result; nothing when the network disables CHECK.</summary>
    /// <exception cref="InvalidOperationException">The network's version is older than 0.4.0, which has no CHECK.</exception>
    /// <exception cref="CniPluginException">A plugin reported a problem.</exception>
    public async Task CheckAsync(CniNetworkConfig network, CniAttachment attachment, CniResult addResult, CancellationToken cancellationToken = default)
    {
        Validate(network, attachment);
        ArgumentNullException.ThrowIfNull(addResult);
        if (!CniVersion.AllowsCheck(network.CniVersion))
        {
            throw new InvalidOperationException($"CNI network {network.Name}: version {network.CniVersion} has no CHECK (it needs 0.4.0 or later)");
        }

        if (network.DisableCheck)
        {
            return;
        }

        foreach (JsonObject plugin in network.Plugins)
        {
            await InvokeAsync(CheckCommand, network, plugin, attachment, addResult, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The spec versions the plugin <paramref name="type"/> supports (its VERSION answer).</summary>
    /// <exception cref="CniPluginException">It failed or answered with something that is not a version result.</exception>
    public async Task<ImmutableArray<string>> VersionAsync(string type, string cniVersion = CniVersion.Latest, CancellationToken cancellationToken = default)
    {
        string executable = Find(type, VersionCommand, null);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["CNI_COMMAND"] = VersionCommand,
            ["CNI_PATH"] = string.Join(':', _options.PluginDirectories),
        };
        string stdin = new JsonObject { ["cniVersion"] = cniVersion }.ToJsonString();
        CniPluginProcess.Output output = await CniPluginProcess.RunAsync(executable, type, VersionCommand, null, environment, stdin, _options, cancellationToken).ConfigureAwait(false);
        ThrowIfFailed(output, type, VersionCommand, null);
        try
        {
            if (JsonNode.Parse(output.Stdout) is JsonObject json && json["supportedVersions"] is JsonArray versions)
            {
                return versions.Select(v => v is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : throw new CniFormatException("supportedVersions holds a non-string")).ToImmutableArray();
            }
        }
        catch (Exception e) when (e is JsonException or CniFormatException)
        {
            throw new CniPluginException(type, VersionCommand, null, null, $"printed an invalid version result: {e.Message}", output.Stderr, e);
        }

        throw new CniPluginException(type, VersionCommand, null, null, "printed no supportedVersions list", output.Stderr);
    }

    private async Task<string> InvokeAsync(string command, CniNetworkConfig network, JsonObject plugin, CniAttachment attachment, CniResult? previous, CancellationToken cancellationToken)
    {
        string type = CniNetworkConfig.TypeOf(plugin);
        string executable = Find(type, command, network.Name);

        // The plugin's own configuration, unchanged but for what the runtime injects (spec section 3).
        var request = (JsonObject)plugin.DeepClone();
        request["name"] = network.Name;
        request["cniVersion"] = network.CniVersion;
        request.Remove("prevResult");
        if (previous is not null)
        {
            request["prevResult"] = CniResultJson.ToJson(previous, network.CniVersion);
        }

        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["CNI_COMMAND"] = command,
            ["CNI_CONTAINERID"] = attachment.ContainerId,
            ["CNI_NETNS"] = attachment.NetnsPath,
            ["CNI_IFNAME"] = attachment.IfName,
            ["CNI_ARGS"] = attachment.ArgsText,
            ["CNI_PATH"] = string.Join(':', _options.PluginDirectories),
        };
        CniPluginProcess.Output output = await CniPluginProcess.RunAsync(executable, type, command, network.Name, environment, request.ToJsonString(), _options, cancellationToken).ConfigureAwait(false);
        ThrowIfFailed(output, type, command, network.Name);
        return output.Stdout;
    }

    private static void ThrowIfFailed(CniPluginProcess.Output output, string type, string command, string? network)
    {
        if (output.ExitCode == 0)
        {
            return;
        }

        CniError? error = CniError.TryParse(output.Stdout);
        string problem = $"exited with status {output.ExitCode.ToString(CultureInfo.InvariantCulture)}"
            + (string.IsNullOrWhiteSpace(output.Stdout) ? " without an error result" : $" and printed no error result: {Excerpt(output.Stdout)}");
        throw new CniPluginException(type, command, network, error, error is null ? problem : null, output.Stderr);
    }

    private string Find(string type, string command, string? network)
    {
        foreach (string directory in _options.PluginDirectories)
        {
            string candidate = Path.Combine(directory, type);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new CniPluginException(type, command, network, null, $"no executable named {type} in {string.Join(':', _options.PluginDirectories)}", string.Empty);
    }

    private static void Validate(CniNetworkConfig network, CniAttachment attachment)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(attachment);
        attachment.Validate();
    }

    private static string Excerpt(string text) => text.Length <= 200 ? text.Trim() : text[..200].Trim() + "...";
}
