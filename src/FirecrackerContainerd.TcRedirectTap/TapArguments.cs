using System.Globalization;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Tap;

namespace FirecrackerContainerd.TcRedirectTap;

/// <summary>
/// The tap's name, owner and group from <c>CNI_ARGS</c> (<c>TC_REDIRECT_TAP_NAME</c>, <c>TC_REDIRECT_TAP_UID</c>,
/// <c>TC_REDIRECT_TAP_GID</c>, as upstream reads them); other keys are ignored.
/// </summary>
/// <param name="Name">The tap's name, or null to let the kernel pick the next free <c>tapN</c>.</param>
/// <param name="Uid">The owner, or null for the plugin's effective uid.</param>
/// <param name="Gid">The group, or null for the plugin's effective gid.</param>
internal sealed record TapArguments(string? Name, uint? Uid, uint? Gid)
{
    public const string NameKey = "TC_REDIRECT_TAP_NAME";
    public const string UidKey = "TC_REDIRECT_TAP_UID";
    public const string GidKey = "TC_REDIRECT_TAP_GID";

    /// <summary>Reads <paramref name="cniArgs"/> (<c>K=V;K2=V2</c>).</summary>
    /// <exception cref="PluginFailure">An entry has no '=', or a value is not valid for its key.</exception>
    public static TapArguments Parse(string cniArgs)
    {
        ArgumentNullException.ThrowIfNull(cniArgs);
        string? name = null;
        uint? uid = null;
        uint? gid = null;
        foreach (string pair in cniArgs.Length == 0 ? [] : cniArgs.Split(';'))
        {
            int equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals < 0)
            {
                throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, $"invalid CNI_ARGS entry \"{pair}\": expected KEY=VALUE");
            }

            string key = pair[..equals];
            string value = pair[(equals + 1)..];
            switch (key)
            {
                case NameKey:
                    try
                    {
                        TapDevice.ValidateName(value);
                    }
                    catch (ArgumentException e)
                    {
                        throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, $"invalid CNI_ARGS {NameKey}: {e.Message}");
                    }

                    name = value;
                    break;
                case UidKey:
                    uid = Id(key, value);
                    break;
                case GidKey:
                    gid = Id(key, value);
                    break;
            }
        }

        return new TapArguments(name, uid, gid);
    }

    private static uint Id(string key, string value) =>
        value.Length > 0 && value.All(char.IsAsciiDigit) && uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out uint id) && id != uint.MaxValue
            ? id
            : throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, $"invalid CNI_ARGS {key}: \"{value}\" is not a numeric id");
}
