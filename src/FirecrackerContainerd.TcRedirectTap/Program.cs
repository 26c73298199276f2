using System.Text.Json.Nodes;
using FirecrackerContainerd.Network.Cni;

namespace FirecrackerContainerd.TcRedirectTap;

/// <summary>
/// The <c>tc-redirect-tap</c> executable: reads the CNI environment and the configuration on stdin, prints a result
/// (ADD), a version list (VERSION) or an error result on stdout, and exits 0 on success and 1 on failure.
/// </summary>
internal static class Program
{
    private const string About = "CNI plugin tc-redirect-tap (FirecrackerContainerd for .NET)";

    public static async Task<int> Main()
    {
        string? command = Environment.GetEnvironmentVariable("CNI_COMMAND");
        if (string.IsNullOrEmpty(command))
        {
            await Console.Error.WriteLineAsync($"{About}\nCNI protocol versions supported: {string.Join(", ", CniVersion.Supported)}").ConfigureAwait(false);
            return 0;
        }

        string stdin = await Console.In.ReadToEndAsync().ConfigureAwait(false);
        if (command == "VERSION")
        {
            await Console.Out.WriteAsync(VersionResult(stdin)).ConfigureAwait(false);
            return 0;
        }

        try
        {
            PluginInvocation invocation = PluginInvocation.Parse(Environment.GetEnvironmentVariable, stdin);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            await Console.Out.WriteAsync(await TcRedirectTapPlugin.RunAsync(invocation, timeout.Token).ConfigureAwait(false)).ConfigureAwait(false);
            return 0;
        }
        catch (PluginFailure e)
        {
            await Console.Out.WriteAsync(e.Error.ToJson(PluginInvocation.VersionForErrors(stdin))).ConfigureAwait(false);
            return 1;
        }
#pragma warning disable CA1031 // The top of the process: every failure becomes a CNI error result.
        catch (Exception e)
#pragma warning restore CA1031
        {
            await Console.Out.WriteAsync(new CniError(CniErrorCodes.Internal, e.Message).ToJson(PluginInvocation.VersionForErrors(stdin))).ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>The VERSION answer: the versions this plugin supports, with the input's cniVersion echoed as the spec asks.</summary>
    internal static string VersionResult(string stdin) => Json.Write(new JsonObject
    {
        ["cniVersion"] = PluginInvocation.VersionForErrors(stdin),
        ["supportedVersions"] = new JsonArray(CniVersion.Supported.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
    });
}
