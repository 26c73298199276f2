using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>
/// The jailer's <c>--id</c> for a VM: 1..64 of <c>[A-Za-z0-9-]</c>, where our VM directory names
/// (<c>&lt;namespace&gt;#&lt;vm id&gt;</c>) may hold <c>#</c>, <c>_</c>, <c>.</c> and be longer.
/// </summary>
/// <remarks>
/// The id is a readable prefix of the directory name, every other character made <c>-</c>, then <c>-</c> and the first
/// 16 hex digits of the name's SHA-256. The prefix alone would merge <c>a_b</c> and <c>a.b</c>, and truncation would merge
/// long names that share a beginning; the hash keeps them apart (a collision needs two names with equal 64-bit hashes
/// and equal prefixes). The same name always gives the same id, so the next shim of a VM finds what a crashed one left.
/// </remarks>
public static partial class JailerId
{
    /// <summary>The jailer accepts ids of at most this many characters.</summary>
    public const int MaxLength = 64;

    /// <summary>Hex digits of the hash at the end of every id.</summary>
    public const int HashDigits = 16;

    /// <summary>At most this much of the VM directory name leads the id: keeps jail paths, and their sockets, short.</summary>
    public const int MaxPrefixLength = 40;

    /// <summary>The jailer id of the VM whose directory is named <paramref name="vmDirName"/>.</summary>
    public static string For(string vmDirName)
    {
        ArgumentException.ThrowIfNullOrEmpty(vmDirName);
        var prefix = new StringBuilder(Math.Min(vmDirName.Length, MaxPrefixLength));
        foreach (char c in vmDirName.AsSpan(0, Math.Min(vmDirName.Length, MaxPrefixLength)))
        {
            prefix.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        }

        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(vmDirName)))[..HashDigits];
        return $"{prefix}-{hash}";
    }

    /// <summary>Whether the jailer accepts <paramref name="id"/> (its instance-id rule, kept to ASCII).</summary>
    public static bool IsValid(string? id) => id is { Length: > 0 and <= MaxLength } && Pattern().IsMatch(id);

    /// <summary>Throws when the jailer would refuse <paramref name="id"/>.</summary>
    public static void Validate(string id)
    {
        if (!IsValid(id))
        {
            throw new ArgumentException(
                $"\"{id}\" cannot be a jailer id: it must be 1..{MaxLength} letters, digits or '-'", nameof(id));
        }
    }

    [GeneratedRegex(@"^[A-Za-z0-9-]+\z")]
    private static partial Regex Pattern();
}
