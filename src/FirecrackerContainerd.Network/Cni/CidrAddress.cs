using System.Globalization;
using System.Net;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>An IP address with a prefix length, host bits kept (<c>10.1.0.5/16</c>), as CNI results write addresses.</summary>
/// <param name="Address">The address.</param>
/// <param name="PrefixLength">The prefix length (0-32 for IPv4, 0-128 for IPv6).</param>
public readonly record struct CidrAddress(IPAddress Address, int PrefixLength)
{
    /// <summary>Parses <c>ADDRESS/PREFIX</c>; false for anything else.</summary>
    public static bool TryParse(string? text, out CidrAddress value)
    {
        value = default;
        int slash = text?.IndexOf('/', StringComparison.Ordinal) ?? -1;
        if (text is null || slash <= 0 || !IPAddress.TryParse(text.AsSpan(0, slash), out IPAddress? address)
            || text.Contains('%', StringComparison.Ordinal))
        {
            return false;
        }

        ReadOnlySpan<char> prefix = text.AsSpan(slash + 1);
        int max = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        if (prefix.Length is 0 or > 3 || !prefix.ToString().All(char.IsAsciiDigit)
            || !int.TryParse(prefix, NumberStyles.None, CultureInfo.InvariantCulture, out int length) || length > max)
        {
            return false;
        }

        value = new CidrAddress(address, length);
        return true;
    }

    /// <summary>The dotted or colon form with the prefix length, e.g. <c>10.1.0.5/16</c>.</summary>
    public override string ToString() => $"{Address}/{PrefixLength.ToString(CultureInfo.InvariantCulture)}";
}
