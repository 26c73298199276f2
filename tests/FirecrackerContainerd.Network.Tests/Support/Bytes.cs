using System.Globalization;

namespace FirecrackerContainerd.Network.Tests.Support;

/// <summary>Byte strings written as hex in tests, one field per line with a comment.</summary>
internal static class Bytes
{
    /// <summary>Parses hex digits, ignoring spaces, newlines and '|' separators.</summary>
    public static byte[] Hex(string hex)
    {
        string digits = new(hex.Where(Uri.IsHexDigit).ToArray());
        return Enumerable.Range(0, digits.Length / 2)
            .Select(i => byte.Parse(digits.AsSpan(i * 2, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture))
            .ToArray();
    }

    /// <summary>Concatenates fields written one per argument.</summary>
    public static byte[] Of(params string[] fields) => fields.SelectMany(Hex).ToArray();

    /// <summary>Hex of <paramref name="bytes"/> with a space every 4 bytes, for readable assertion failures.</summary>
    public static string Show(byte[] bytes) =>
        string.Join(' ', bytes.Chunk(4).Select(c => Convert.ToHexString(c).ToLowerInvariant()));
}
