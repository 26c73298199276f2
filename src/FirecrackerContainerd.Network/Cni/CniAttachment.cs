using FirecrackerContainerd.Network.Tap;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>The per-attachment parameters of a CNI operation (spec section 3, "Attachment Parameters").</summary>
/// <param name="ContainerId">The container (or VM) id, <c>CNI_CONTAINERID</c>.</param>
/// <param name="NetnsPath">The network namespace path, <c>CNI_NETNS</c>.</param>
/// <param name="IfName">The interface name inside it, <c>CNI_IFNAME</c>.</param>
/// <param name="Args">Extra arguments, <c>CNI_ARGS</c> (<c>K=V;K2=V2</c>).</param>
public sealed record CniAttachment(string ContainerId, string NetnsPath, string IfName, IReadOnlyList<KeyValuePair<string, string>>? Args = null)
{
    /// <summary>Checks the fields as the specification and the reference plugins do.</summary>
    /// <exception cref="ArgumentException">A field breaks its rule; the message names it.</exception>
    public void Validate()
    {
        if (!IsCniName(ContainerId))
        {
            throw new ArgumentException($"CNI_CONTAINERID \"{ContainerId}\" must start with a letter or digit followed by letters, digits, '_', '.' or '-'", nameof(ContainerId));
        }

        if (string.IsNullOrEmpty(NetnsPath))
        {
            throw new ArgumentException("CNI_NETNS is empty", nameof(NetnsPath));
        }

        try
        {
            TapDevice.ValidateName(IfName);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"CNI_IFNAME: {e.Message}", nameof(IfName), e);
        }

        foreach ((string key, string value) in Args ?? [])
        {
            if (key.Length == 0 || key.Contains('=', StringComparison.Ordinal) || key.Contains(';', StringComparison.Ordinal) || value.Contains(';', StringComparison.Ordinal))
            {
                throw new ArgumentException($"CNI_ARGS entry \"{key}={value}\": keys must be non-empty without '=' or ';', values without ';'", nameof(Args));
            }
        }
    }

    /// <summary>The <c>CNI_ARGS</c> value.</summary>
    public string ArgsText => string.Join(';', (Args ?? []).Select(a => $"{a.Key}={a.Value}"));

    /// <summary>Whether <paramref name="name"/> follows the specification's rule for container ids and network names.</summary>
    public static bool IsCniName(string? name) =>
        !string.IsNullOrEmpty(name) && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');
}
